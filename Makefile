# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
SCENARIO ?= db_exhaustion

.PHONY: demo test test-cold bootstrap unit integration drills drill quality sanity lint lab-down build clean

demo: bootstrap
	scripts/demo.sh

test: bootstrap
	scripts/test.sh

# The test command as a new machine runs it: fresh clone, empty HOME (no caches). Run it before
# resolving anything that touches lab/, scripts/ or what installs or builds.
test-cold:
	scripts/test-cold.sh

bootstrap:
	scripts/bootstrap.sh

unit: bootstrap
	.venv/bin/pytest tests/unit

integration: bootstrap
	scripts/test.sh tests/integration

drill: bootstrap
	scripts/drill.sh $(SCENARIO)

drills: bootstrap
	scripts/drill.sh all

sanity: bootstrap
	scripts/sanity.sh

lint: bootstrap
	scripts/lint.sh

build: bootstrap
	.venv/bin/ansible-galaxy collection build --force --output-path build/

lab-down:
	lab/lab down

clean: lab-down
	rm -rf build tests/output .pytest_cache
