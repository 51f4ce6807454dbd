# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
# Each installs what is missing (Debian packages, a venv in .venv) and then does its job.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench system-deps clean

system-deps:
	@missing=""; \
	command -v notary >/dev/null 2>&1 && command -v notary-server >/dev/null 2>&1 || missing="$$missing notary"; \
	ldconfig -p 2>/dev/null | grep -q 'libzbar.so.0' || missing="$$missing libzbar0"; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="$$missing softhsm2"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 3; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[online,test]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check ceremony online tests bench
	$(VENV)/bin/ruff format --check ceremony online
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: system-deps $(STAMP) lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -p no:cacheprovider

demo: system-deps $(STAMP)
	$(PY) scripts/demo.py

bench: system-deps $(STAMP)
	$(PY) bench/qr.py
	$(PY) bench/ceremony_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
