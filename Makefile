# trainctl: `make demo` runs the main job on the embedded emulator, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE ?= examples/quickstart

.PHONY: venv test lint demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[local,dev,pulumi]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check planner tests bench stacks

test: venv lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: venv
	$(BIN)/trainctl -f $(EXAMPLE)/trainctl.yaml validate
	$(BIN)/trainctl -f $(EXAMPLE)/trainctl.yaml graph --format mermaid

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .trainctl build *.egg-info
