# Set-up and everyday commands. Each target creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export NO_MKDOCS_2_WARNING := 1

.PHONY: site serve test browser bench clean

site: $(INSTALLED)
	$(BIN)/mkdocs build --strict --site-dir site

serve: $(INSTALLED)
	$(BIN)/mkdocs serve

test: $(INSTALLED) browser
	node --test tests/progress/
	$(BIN)/python -m pytest -q

bench: $(INSTALLED)
	$(BIN)/python bench/build_bench.py
	$(BIN)/python bench/toolkit_bench.py
	$(BIN)/python bench/progress_size.py

# The full profile: MkDocs, the figure toolkit (torch, timm, matplotlib) and the test tools.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[figures,test]'
	touch $@

# Browser tests drive Debian's Chromium; as root, install it when it is missing.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install chromium' (browser tests need /usr/bin/chromium)" >&2; exit 1; \
	  fi; \
	fi

clean:
	rm -rf site $(VENV)
