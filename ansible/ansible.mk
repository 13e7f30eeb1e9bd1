# ansible/ansible.mk: the Ansible role's tools, its wheelhouse, lint and Molecule tests.
# Included by the top-level Makefile.
#
#   make ansible-venv   .venv-ansible from requirements-ansible.lock (ansible-core 2.16, ansible 9,
#                       molecule, molecule-plugins[docker], ansible-lint, yamllint), hashes checked
#   make wheelhouse     dist/wheelhouse: what the role installs on Debian and Ubuntu hosts
#                       (WHEELHOUSE_PYTHONS: the hosts' Python versions; the default covers
#                       Ubuntu 20.04-24.04 (3.8, 3.10, 3.12) and Debian 11-13 (3.9, 3.11, 3.13))
#   make lint-ansible   yamllint and ansible-lint (production profile); part of `make lint`
#   make molecule       molecule test of the default scenario on the testbed (root); part of
#                       `make test`. MOLECULE_SCENARIO=centos7 for the CentOS 7 one.

ANSIBLE_VENV ?= .venv-ansible
WHEELHOUSE ?= dist/wheelhouse
WHEELHOUSE_PYTHONS ?= 3.8 3.9 3.10 3.11 3.12 3.13
MOLECULE_SCENARIO ?= default
MOLECULE_ARGS ?=

.PHONY: ansible-venv wheelhouse lint-ansible molecule

$(ANSIBLE_VENV)/.stamp: requirements-ansible.lock
	@test -n "$(PYTHON311)" || { echo "ansible-venv: Python 3.11 not found; install it with 'pyenv install 3.11' or run make PYTHON311=/path/to/python3.11" >&2; exit 1; }
	rm -rf $(ANSIBLE_VENV)
	$(PYTHON311) -m venv $(ANSIBLE_VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 $(ANSIBLE_VENV)/bin/python -m pip install -q \
		--require-hashes -r requirements-ansible.lock
	touch $@

ansible-venv: $(ANSIBLE_VENV)/.stamp

wheelhouse: rpm-deps
	BUILD_PYTHON3=/usr/bin/python3 /usr/bin/python3 ansible/build-wheelhouse --out $(WHEELHOUSE) \
		$(foreach p,$(WHEELHOUSE_PYTHONS),--python $(p))

lint-ansible: ansible-venv
	$(ANSIBLE_VENV)/bin/yamllint --strict ansible molecule .yamllint .ansible-lint
	PATH="$(abspath $(ANSIBLE_VENV))/bin:$$PATH" ANSIBLE_ROLES_PATH="$(CURDIR)/ansible/roles" \
		$(ANSIBLE_VENV)/bin/ansible-lint --offline -q ansible molecule
	cd ansible && PATH="$(abspath $(ANSIBLE_VENV))/bin:$$PATH" ansible-playbook --syntax-check \
		-i inventory/example site.yml

molecule: ansible-venv wheelhouse test-packaging-deps
	molecule/run $(MOLECULE_SCENARIO) $(MOLECULE_ARGS)
