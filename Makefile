# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
# Each installs what is missing (Debian packages, a venv in .venv) and then does its job.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PYTEST_WORKERS ?= 2

.PHONY: demo test lint fuzz bench bench-fleet system-deps test-deps clean offline-bundle

# What the tools and `make demo` need. libzbar is found without ldconfig (not on a normal
# user's PATH): ctypes' own lookup, then the usual library folders.
system-deps:
	@missing=""; \
	command -v notary >/dev/null 2>&1 && command -v notary-server >/dev/null 2>&1 || missing="$$missing notary"; \
	python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("zbar") else 1)' 2>/dev/null \
		|| ls /usr/lib/*/libzbar.so.0 /usr/lib/libzbar.so.0 /usr/lib64/libzbar.so.0 >/dev/null 2>&1 \
		|| missing="$$missing libzbar0"; \
	python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

# Only the tests need these: tokens (SoftHSM2), a fake clock, a browser for the HTML player,
# tmux (what a real terminal shows of a review),
# PostgreSQL for the production-shaped Notary (also `local-server --production`).
test-deps: system-deps
	@missing=""; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="$$missing softhsm2"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages for the tests:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 3; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[online]'
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[online,test]'
	@touch $(TEST_STAMP)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check ceremony online tests bench fuzz
	$(VENV)/bin/ruff format --check ceremony online
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: test-deps $(TEST_STAMP) lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -p no:cacheprovider

demo: system-deps $(STAMP)
	$(PY) scripts/demo.py

# The offline half and its dependencies as hash-pinned wheels, with install.sh (no index).
offline-bundle: $(STAMP)
	$(PY) scripts/offline_bundle.py dist/offline-bundle

# Coverage-guided fuzzing (atheris) of every parser: FUZZ_RUNS iterations each (FUZZ_SECONDS
# caps each parser's time as well; FUZZ_ONLY=a,b picks parsers). Prints iterations and crashes
# per parser; the corpus grows in .fuzz/, crashing inputs land in .fuzz/crashes/<parser>/.
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 0
fuzz: $(TEST_STAMP)
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) nice $(PY) -m fuzz

bench: test-deps $(TEST_STAMP)
	$(PY) bench/qr.py
	$(PY) bench/scale.py

bench-fleet: test-deps $(TEST_STAMP)
	$(PY) bench/fleet.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
