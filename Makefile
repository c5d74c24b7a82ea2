# bqlab: two commands do everything on a fresh Debian 12 machine.
#   make run    build QEMU, the guest kernel and image (cached), run the default scenarios
#               (bqlab run builds whatever is missing first)
#   make test   the pytest suite (unit tests, then VM tests)

PYTHON ?= python3
VENV   := .venv
BQLAB  := $(VENV)/bin/bqlab
PYTEST := $(VENV)/bin/pytest
STAMP  := $(VENV)/.installed

# Scenarios `make run` runs; override: make run SCENARIOS="smoke"
SCENARIOS ?= rx-stall xdp-cycles
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-m 'not vm'"
PYTEST_ARGS ?=

# make fuzz: fresh seeds against the ASan+UBSan build of QEMU for FUZZ_SECONDS; findings
# are shrunk into JSON reproducers (replay: python -m tests.device.fuzz_bqnic --replay F)
FUZZ_SECONDS ?= 1800
FUZZ_OUT     ?= artifacts/fuzz

# make test-kernels: the long matrix, not part of make test: on each kernel, every built-in
# scenario against its expectation (selfcheck) and each verdict on each NIC model (matrix)
KERNELS ?= debian:7.2 debian:7.3

.PHONY: run test unit vm build lint venv clean-venv fuzz test-kernels

run: $(STAMP)
	$(BQLAB) run $(SCENARIOS)

test: $(STAMP)
	$(BQLAB) deps test
	$(BQLAB) build all
	$(PYTEST) $(PYTEST_ARGS)

unit: $(STAMP)
	$(PYTEST) tests/unit $(PYTEST_ARGS)

vm: $(STAMP)
	$(BQLAB) deps test
	$(PYTEST) -m vm $(PYTEST_ARGS)

test-kernels: $(STAMP)
	$(BQLAB) deps test
	$(BQLAB) build driver-check
	set -e; for k in $(KERNELS); do \
	  $(BQLAB) selfcheck --kernel $$k; \
	  $(BQLAB) matrix --kernel $$k; \
	done

build: $(STAMP)
	$(BQLAB) build all

fuzz: $(STAMP)
	$(BQLAB) deps run
	$(BQLAB) build qemu --sanitize
	$(VENV)/bin/python -m tests.device.fuzz_bqnic --sanitize --seconds $(FUZZ_SECONDS) \
	  --out $(FUZZ_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check harness tests

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv' 2>/dev/null || { \
	  echo "python3 venv module missing: apt-get install python3-venv"; exit 3; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

clean-venv:
	rm -rf $(VENV)
