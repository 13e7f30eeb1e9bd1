# packaging/packaging.mk: the RPM, the testbed image, and their tests. Included by the
# top-level Makefile.
#
#   make rpm              EL7 RPM with the rh-python36 collection: dist/rpm/el7/
#                         (RPM_ARGS="--define 'scl rh-python38'" for another collection)
#   make rpm-python3      RPM for the system python3 (--without scl): dist/rpm/python3/
#   make repo             a signed yum repository of the EL7 RPM: dist/repo/el7/ (packages,
#                         repodata, RPM-GPG-KEY-wca, wca.repo); make repo-python3: dist/repo/python3/.
#                         REPO_KEY=<key id> (from $GNUPGHOME) signs with the operator's key,
#                         REPO_URL=<base URL> goes into wca.repo; without REPO_KEY a throwaway
#                         test key in build/repo-gnupg signs (see docs/deployment.md)
#   make rpm-image        the Debian 12 + systemd testbed image, built once per machine
#   make test-packaging   reproducibility, rpmlint, systemd-analyze, and the RPM installed and
#                         run under systemd in the testbed (needs root for the container part)
# Missing tools (rpm, rpmlint, debootstrap, docker.io, ...) are installed with apt-get when
# running as root; otherwise the command that installs them is printed.

RPM_DIR ?= dist/rpm
RPM_ARGS ?=
REPO_DIR ?= dist/repo
REPO_KEY ?=
REPO_URL ?=
REPO_ARGS = $(if $(REPO_KEY),--key '$(REPO_KEY)') $(if $(REPO_URL),--url '$(REPO_URL)')
TESTBED := packaging/testbed/testbed

.PHONY: rpm rpm-python3 rpm-deps repo repo-python3 repo-deps rpm-image test-packaging test-packaging-deps

rpm-deps:
	packaging/tools/install-deps build

rpm: rpm-deps
	packaging/rpm/build-rpm $(RPM_DIR)/el7 $(RPM_ARGS)

rpm-python3: rpm-deps
	packaging/rpm/build-rpm $(RPM_DIR)/python3 --without scl $(RPM_ARGS)

repo-deps:
	packaging/tools/install-deps repo

# The binary RPM of the variant just built (build-rpm empties nothing: take the newest).
repo: rpm repo-deps
	packaging/repo/make-repo $(REPO_ARGS) $(REPO_DIR)/el7 $$(ls -t $(RPM_DIR)/el7/*.x86_64.rpm | head -n 1)

repo-python3: rpm-python3 repo-deps
	packaging/repo/make-repo $(REPO_ARGS) $(REPO_DIR)/python3 $$(ls -t $(RPM_DIR)/python3/*.x86_64.rpm | head -n 1)

rpm-image:
	packaging/tools/install-deps test
	$(TESTBED) image

test-packaging-deps:
	packaging/tools/install-deps test

test-packaging: venv test-tools test-packaging-deps
	PYTHONPATH=tests/packaging $(VENV)/bin/python -m pytest -p no:cacheprovider -p pkg_fixtures \
		$(sort $(wildcard tests/packaging/check_*.py)) $(PYTEST_ARGS)
