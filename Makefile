# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt

.PHONY: venv demo test bench clean

$(BIN)/medfab: pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) torch
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e ".[dev,radiomics]"
	touch $(BIN)/medfab

venv: $(BIN)/medfab

demo: venv
	$(BIN)/python -m medfab.demo --out demo_out

test: venv
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) demo_out .medfab_cache
