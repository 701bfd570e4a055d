# rrmbed — fresh-machine entry points:  make demo   |   make test
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and pinned: on this machine the pin resolves to the local
# CPU wheel; override e.g. TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rrmbed demo scenarios/3cell-k2.toml --out runs/demo

# The project's bytecode is written once before the tests: with PYTHONDONTWRITEBYTECODE set
# (as on the CI machine) every one of the suite's thousands of processes would otherwise
# compile the modules it imports again (about 4 % of the network tests' time).
BYTECODE := $(PY) -m compileall -q protocols channel_server node controller tests

test: $(STAMP)
	$(BYTECODE)
	$(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(BYTECODE)
	$(PY) -m pytest -q -ra tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy protocols channel_server controller node

bench: $(STAMP)
	$(VENV)/bin/rrmbed bench transport

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
