"""Fixtures for the toolkit tests: tiny seeded models and the real pretrained model."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyNet(nn.Module):
    """Conv-BN-ReLU-Conv-ReLU, global average pooling and a linear head (4 classes)."""

    def __init__(self, inplace: bool = False, channels: int = 6):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(channels, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU(inplace=inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.fc(self.pool(x).flatten(1))


def make_tiny(seed: int, inplace: bool = False) -> TinyNet:
    """Return a TinyNet with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = TinyNet(inplace=inplace)
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def tiny() -> TinyNet:
    return make_tiny(0)


@pytest.fixture(scope="session")
def real_model():
    import figures_pipeline as fp

    return fp.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def chelsea_input(real_model):
    import figures_pipeline as fp

    return real_model.preprocess(fp.load_image("chelsea"))


@pytest.fixture(autouse=True)
def single_thread():
    """Run each toolkit test on one intra-op thread.

    The models here are tiny or run one image at a time: on a 2-core machine shared with other
    processes, two OpenMP threads make the small convolutions many times slower, not faster.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
