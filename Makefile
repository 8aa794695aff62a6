# fluxpy's set-up and everyday commands. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
FLUXPY := $(PYTHON) -m flux_cli
TOOLS := etcd kube-apiserver kustomize helm sops age age-keygen

.PHONY: setup tools test demo demo-down completions bench

setup: ## install fluxpy (editable) with its test dependencies
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'

tools: ## find or build (from Go modules, cached by version) the binaries fluxpy runs
	$(PYTHON) -m controllers.localcluster.tools $(TOOLS)

test: setup tools ## the whole test suite, against a real local control plane
	$(PYTHON) -m pytest

demo: setup tools ## the main job on the embedded local control plane
	$(FLUXPY) dev up
	eval "$$($(FLUXPY) dev env)" && $(FLUXPY) install && $(FLUXPY) check && $(FLUXPY) get all -A
	@echo "The local control plane keeps running: eval \"\$$($(FLUXPY) dev env)\" to use it, 'make demo-down' to stop it."

demo-down: ## stop the demo's control plane and controllers
	$(FLUXPY) dev down

completions: ## regenerate the shell completion scripts under completions/
	$(PYTHON) -c 'from pathlib import Path; from flux_cli.commands.completion import write_all; write_all(Path("completions"))'

bench: setup tools ## print the CLI start-up figures
	$(PYTHON) tests/bench/cli_startup.py
