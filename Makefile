# wca: set up, run, test.  `make run` and `make test` work from a clean clone.
SHELL := /bin/bash
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON311 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.11*/bin/python3.11) $(shell command -v python3.11))
PYTHON36 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.6.15/bin/python3.6) $(shell command -v python3.6))
VENV ?= .venv
VENV36 ?= .venv36
CONFIG ?= configs/wca_config.yml
# As root the agent refuses to start without --root (see README: "Privileges").
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--root,)
PYTEST_ARGS ?=

.PHONY: all venv venv36 run test test311 test36 test-tools lint bench soak clean

all: test

$(VENV)/.stamp: requirements.lock requirements-test.lock setup.cfg
	tools/mkvenv $(PYTHON311) $(VENV)
	touch $@

$(VENV36)/.stamp: requirements.lock requirements-test.lock setup.cfg
	tools/mkvenv $(PYTHON36) $(VENV36)
	touch $@

venv: $(VENV)/.stamp
venv36: $(VENV36)/.stamp

# A checkout made under umask 002 (or a tarball extracted as root) leaves the config and its
# directories group-writable, and the agent refuses such a config (README: Configuration): so,
# inside this checkout only, take write permission from group and others first, and say so.
run: venv
	@p='$(abspath $(CONFIG))'; \
	while :; do \
	    case "$$p" in '$(CURDIR)'|'$(CURDIR)'/*) ;; *) break ;; esac; \
	    if [ ! -L "$$p" ] && [ -n "$$(find "$$p" -maxdepth 0 -perm /022 2>/dev/null)" ]; then \
	        chmod go-w "$$p" && echo "make run: chmod go-w $$p (the agent refuses a config that group or others can change)"; \
	    fi; \
	    [ "$$p" != '$(CURDIR)' ] || break; \
	    p=$$(dirname "$$p"); \
	done
	$(VENV)/bin/python -m wca --config $(CONFIG) $(ROOT_FLAG)

# Tools the tests drive for real (promtool, ...): installed here, never skipped in CI.
test-tools:
	tools/install-test-tools

test: test-tools test311 test36 lint test-packaging molecule

test311: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test36: venv36
	$(VENV36)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv lint-ansible
	$(VENV)/bin/python -m flake8 wca tests testing benchmarks examples

bench: venv
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

# The fault-injection soak (docs/reliability.md): the agent for SOAK_SECONDS (default 600) under
# task churn and injected faults; needs root. Not part of `make test`. The figures go to
# soak-results/soak.json (SOAK_REPORT) and are printed.
soak: venv test-tools
	$(VENV)/bin/python -m pytest -m soak -s tests/soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VENV36) $(ANSIBLE_VENV) build dist *.egg-info .pytest_cache

-include packaging/packaging.mk
# The Ansible role: wheelhouse, lint-ansible, molecule (ansible/ansible.mk).
-include ansible/ansible.mk
