"""Time the interpretability toolkit on the default model (EfficientNet-Lite0) on this CPU.

Prints the median wall time of:
- one plain forward + backward pass at 224x224 (the reference; target: Grad-CAM <= 1.5x it),
  computing every parameter's gradient, and one forward pass alone for context,
- one Grad-CAM, one Grad-CAM++ and one saliency map on the same input,
- one feature visualisation at its default settings (steps, image size).

Run: .venv/bin/python bench/toolkit_bench.py [--repeats N] [--threads T]
This is a benchmark that prints figures, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per measurement (default 15)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--visualisation-repeats", type=int, default=3, help="timed feature visualisations (default 3)")
    args = parser.parse_args()

    import torch

    import figures_pipeline as fp

    if args.threads:
        torch.set_num_threads(args.threads)
    model = fp.load_model("efficientnet_lite0")
    x = model.preprocess(fp.load_image("chelsea"))
    target = model.class_index("Egyptian cat")

    # The plain pass runs on its own copy, because backward() fills the parameters' .grad.
    plain = fp.load_model("efficientnet_lite0").module

    def forward_backward() -> None:
        plain.zero_grad(set_to_none=True)
        plain(x)[0, target].backward()

    def forward_only() -> None:
        with torch.no_grad():
            plain(x)

    timings = {
        "forward + backward (reference)": median_time(forward_backward, args.repeats),
        "forward only, no_grad": median_time(forward_only, args.repeats),
        "grad_cam": median_time(lambda: fp.grad_cam(model, x, "bn2", target), args.repeats),
        "grad_cam_plus_plus": median_time(lambda: fp.grad_cam_plus_plus(model, x, "bn2", target), args.repeats),
        "saliency": median_time(lambda: fp.saliency(model, x, target), args.repeats),
    }
    reference = timings["forward + backward (reference)"]

    print(f"EfficientNet-Lite0, input 1x3x224x224, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, median of {args.repeats} runs, "
          f"load average {os.getloadavg()[0]:.1f} at the end (other processes slow every figure)")
    for name, seconds in timings.items():
        print(f"  {name:32s} {seconds * 1000:8.1f} ms   {seconds / reference:5.2f} x reference")
    ratio = timings["grad_cam"] / reference
    print(f"  Grad-CAM / reference = {ratio:.2f} (target <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}")

    import inspect

    defaults = inspect.signature(fp.feature_visualisation).parameters
    steps = defaults["steps"].default
    size = defaults["image_size"].default
    for layer, channel in (("blocks.3", 5), ("blocks.5", 10)):
        seconds = median_time(
            lambda: fp.feature_visualisation(model, layer, channel), args.visualisation_repeats, warmup=0
        )
        print(f"  feature_visualisation {layer}[{channel}] ({steps} steps, {size}x{size} px): {seconds:.2f} s")


def median_time(function: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Return the median wall time of ``function`` in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


if __name__ == "__main__":
    main()
