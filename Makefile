# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export OPENBLAS_NUM_THREADS := 1
export MPLBACKEND := Agg

.PHONY: setup browser demo test test-slow hostile check lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/rollout-lab run scenarios/quickstart.toml --out runs/quickstart --force

test: setup browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The report's browser test needs Debian's chromium; install it when we can (root + apt-get),
# otherwise that one test skips with its reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "chromium not found: the browser test will be skipped"; fi; }

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# Every hostile input through the real CLI, two at a time; prints a total.
hostile: setup
	$(BIN)/python -m tests.reliability.hostile

lint: setup
	$(BIN)/ruff check replay sim lab reports rollout_lab tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs
