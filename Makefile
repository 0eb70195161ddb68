# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install mpenv, run the main job
#   make test   create .venv, install mpenv with test extras, run every test
# TORCH picks the torch build. The default asks for any torch >= 2.1; on machines that keep a local
# CPU wheel (CI here) use e.g. `make test TORCH=torch==2.13.0`, which .ci/run does.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch>=2.1
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m agents.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) benchmarks/bench_gridworld.py
	$(PY) benchmarks/bench_value_iteration.py
	$(PY) benchmarks/bench_vs_sb3.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .ruff_cache
