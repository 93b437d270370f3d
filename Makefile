# make demo  - deploy the example app into a local systemd container and show its answer
# make test  - lint, unit tests and every Molecule scenario (what .ci/run runs)
# make bench - serving benchmark: ceiling, tutorial recipe and the role side by side (benchmarks/)
# make timings - fresh converge, no-change re-run and code-only redeploy times on the demo container
# make collection - build the Ansible collection fastapi_ops.app (galaxy.yml) into dist/
# make changelog - lint the changelog fragments and changelogs/changelog.yaml (docs/collection.md)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/.venv/bin:$(PATH)
SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: demo demo-clean test bootstrap lint changelog unit molecule bench timings collection

demo:
	scripts/demo.sh

demo-clean:
	docker rm -f fastapi-app-demo

test: bootstrap lint unit molecule

bench:
	benchmarks/serving.sh $(BENCH_ARGS)

timings:
	scripts/deploy-timings.sh

# dist/fastapi_ops-app-<version>.tar.gz; install it with ansible-galaxy collection install <tarball>.
collection:
	ansible-galaxy collection build --force --output-path dist .

bootstrap:
	scripts/bootstrap.sh all

# scripts/sanity.sh: ansible-test sanity and antsibull-docs on the collection (about 1.5 min with its
# cached virtualenvs; the first run makes them from PyPI).
lint: changelog
	yamllint --strict .
	ansible-lint
	scripts/sanity.sh

# antsibull-changelog: every fragment in changelogs/fragments/ and the release history it is released into.
changelog:
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# orders_app's tests need a real PostgreSQL: pg_virtualenv (Debian's postgresql-common, installed by
# bootstrap) runs them in a throw-away cluster; its dependencies come from requirements-dev.txt.
# The low end of roles/fastapi_app/files/serving_range.json (tests/unit/serving-low.txt): the worker
# tests run once more with its python serving. Made again whenever that file changes.
SERVING_LOW ?= .venv-serving-low

$(SERVING_LOW)/.installed: tests/unit/serving-low.txt
	rm -rf $(SERVING_LOW)
	python -m venv $(SERVING_LOW)
	$(SERVING_LOW)/bin/pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: -r tests/unit/serving-low.txt
	$(SERVING_LOW)/bin/pip check --disable-pip-version-check
	touch $@

unit: $(SERVING_LOW)/.installed
	python -m pytest -q tests/unit
	python -m pytest -q tests/unit/test_fastapi_app_worker.py --serving-python $(SERVING_LOW)/bin/python
	pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./examples/hello_app
	python -m pytest -q examples/hello_app
	command -v pg_virtualenv >/dev/null || { echo "pg_virtualenv not found: run make bootstrap (installs postgresql)" >&2; exit 1; }
	pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./examples/orders_app
	pg_virtualenv python -m pytest -q examples/orders_app

# One scenario after the other: they share the machine's two cores.
molecule:
	for scenario in $(SCENARIOS); do \
		start=$$(date +%s); molecule test -s $$scenario; \
		echo "molecule test -s $$scenario: $$(( $$(date +%s) - start )) s"; \
	done
