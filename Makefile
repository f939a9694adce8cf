# trainctl: `make demo` runs the main job on the embedded emulator, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# One stamp per set of extras: `make demo` installs only what the demo runs (the emulator
# and s5cmd), `make test`, `lint` and `bench` everything (dev tools, the aws CLI, Pulumi).
STAMP      := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
EXAMPLE ?= examples/quickstart

.PHONY: venv venv-demo sysdeps test lint demo bench fuzz faults clean prices

venv: $(STAMP)
venv-demo: $(DEMO_STAMP)

# Optional system tools: Graphviz (graph --format svg|png), xfsprogs (xfs volumes), and
# fdisk + cryptsetup-bin (partition-table and LUKS devices that mount.sh must refuse).
# Installed only where we are root with apt-get; the tests that need them skip otherwise.
SYSDEPS := $(VENV)/.sysdeps
sysdeps: $(SYSDEPS)

$(SYSDEPS): | $(STAMP)
	-@if command -v dot >/dev/null && command -v mkfs.xfs >/dev/null && \
	  command -v sfdisk >/dev/null && command -v cryptsetup >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing graphviz, xfsprogs, fdisk, cryptsetup-bin (optional system tools)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    graphviz xfsprogs fdisk cryptsetup-bin) >/dev/null 2>&1 || echo "could not install them: those tests skip"; \
	else echo "graphviz/xfsprogs/fdisk/cryptsetup not installed and not root: those tests skip"; fi
	@touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[local,dev,pulumi]'
	touch $(STAMP) $(DEMO_STAMP)

# The full set includes the demo's: a venv made for `make test` serves `make demo` too.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $(DEMO_STAMP)

lint: venv
	$(BIN)/ruff check planner tests bench stacks scripts
	$(BIN)/mypy planner

test: venv sysdeps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The main job on the embedded emulator: start it, put the sample dataset in its S3, plan,
# apply, plan again ("No changes"), export the graph, and show the bytes on the instance.
TRAINCTL := $(abspath $(BIN))/trainctl
demo: venv-demo
	cd $(EXAMPLE) && $(TRAINCTL) local up
	cd $(EXAMPLE) && eval "$$($(TRAINCTL) local env)" && \
	  $(abspath $(BIN))/s5cmd --log error --endpoint-url "$$AWS_ENDPOINT_URL" sync \
	    sample-data/ s3://trainctl-demo-datasets/tiny-imagenet/
	cd $(EXAMPLE) && $(TRAINCTL) plan
	cd $(EXAMPLE) && $(TRAINCTL) apply --auto-approve
	cd $(EXAMPLE) && $(TRAINCTL) plan --detailed-exitcode
	cd $(EXAMPLE) && $(TRAINCTL) graph --format mermaid -o graph.mmd && echo "graph written to $(EXAMPLE)/graph.mmd"
	@echo "Files on the emulated instance's /data (from the emulated S3):"
	@cd $(EXAMPLE)/.trainctl/sandbox && find -L . -path '*/data/*' -type f | sort | head -20
	@echo "The emulator keeps running: 'cd $(EXAMPLE) && $(TRAINCTL) local down' stops it."

bench: venv
	$(BIN)/python -m bench

# Many more fuzz examples than the suite runs (docs/reliability.md); prints the counts.
fuzz: venv
	TRAINCTL_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/test_fuzz.py tests/test_file_checks.py::test_every_live_snapshot_field_of_the_wrong_type_names_it

# The fault-proxy and kill -9 tests with their figures (TRAINCTL_FAULT_SEED picks the faults).
faults: venv
	$(BIN)/python -m pytest -q -s -p no:cacheprovider -p no:logging \
	  tests/test_faults.py tests/test_crashes.py

clean:
	rm -rf $(VENV) .trainctl build *.egg-info

# Regenerate planner/data/prices.json from apache-libcloud's pricing.json (dev extra)
# and scripts/ebs_rates.json; see docs/cost.md.
prices: $(STAMP)
	$(BIN)/python -m scripts.generate_prices
