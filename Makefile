# make demo  - deploy the example app into a local systemd container and show its answer
# make test  - lint, unit tests and every Molecule scenario (what .ci/run runs)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/.venv/bin:$(PATH)
SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: demo demo-clean test bootstrap lint unit molecule

demo:
	scripts/demo.sh

demo-clean:
	docker rm -f fastapi-app-demo

test: bootstrap lint unit molecule

bootstrap:
	scripts/bootstrap.sh all

lint:
	yamllint --strict .
	ansible-lint

unit:
	python -m pytest -q tests/unit
	pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./examples/hello_app
	python -m pytest -q examples/hello_app

# One scenario after the other: they share the machine's two cores.
molecule:
	for scenario in $(SCENARIOS); do \
		start=$$(date +%s); molecule test -s $$scenario; \
		echo "molecule test -s $$scenario: $$(( $$(date +%s) - start )) s"; \
	done
