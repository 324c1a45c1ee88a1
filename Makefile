PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint types unit bench bench-quick serve clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/actorbus demo

lint: $(STAMP)
	$(VENV)/bin/ruff check bus actors contracts actorbus bench tests
	$(VENV)/bin/ruff format --check bus actors contracts actorbus bench tests

types: $(STAMP)
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test: that is a failure here too.
unit: $(STAMP)
	$(PY) -m pytest -q

test: lint types unit

bench: $(STAMP)
	$(VENV)/bin/actorbus bench --json bench-full.json

bench-quick: $(STAMP)
	$(VENV)/bin/actorbus bench --quick --json bench-quick.json

serve: $(STAMP)
	$(VENV)/bin/actorbus serve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
