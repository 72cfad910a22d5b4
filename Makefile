# Two commands set everything up on a fresh machine with Python >= 3.11:
#   make demo   - create .venv if missing, install, run the sample cogify job
#   make test   - same set-up, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := test,healpix,dask,ray,lithops,htcondor,cells,ml,ttc
STAMP  := $(VENV)/.installed-$(shell echo $(EXTRAS) | tr ',' '-')

.PHONY: demo test lint bench lock clean

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tilefleet needs Python >= 3.11 (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@# --compile-bytecode: every worker process tilefleet starts imports from .pyc files
	@# instead of compiling the libraries' sources again (seconds per process otherwise).
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements/constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tilefleet demo

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff, and the layers of the code (import-linter's contract in pyproject.toml).
lint: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c requirements/constraints.txt ruff import-linter
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c requirements/constraints.txt -e '.[$(EXTRAS),bench]'
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Re-resolve the pinned versions (run after changing dependencies in pyproject.toml).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --all-extras pyproject.toml -o requirements/constraints.txt

clean:
	rm -rf $(VENV) runs tilefleet-demo .pytest_cache
