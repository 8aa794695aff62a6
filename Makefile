# fluxpy's set-up and everyday commands. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
FLUXPY := $(PYTHON) -m flux_cli
TOOLS := etcd kube-apiserver kustomize helm sops age age-keygen versitygw

# Debian packages the test servers use (command they provide = package): sshd for git over SSH, the
# OCI registry, gpg for signed commits, htpasswd for the registry's basic auth, chromium for the browser tests
# (tests/servers/browser.py).
APT_PACKAGES := sshd=openssh-server docker-registry=docker-registry gpg=gnupg htpasswd=apache2-utils chromium=chromium

.PHONY: setup system-deps tools lint-imports test faults demo demo-down completions golden screenshots bench bench-vs-flux

setup: system-deps ## install fluxpy (editable: a path entry, no import hook at start-up) with its test dependencies
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat

system-deps: ## install the Debian packages above that are missing (needs root or sudo)
	@missing=""; for pair in $(APT_PACKAGES); do cmd=$${pair%%=*}; pkg=$${pair#*=}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || [ -x /usr/bin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

tools: ## find or build (from Go modules, cached by version) the binaries fluxpy runs
	$(PYTHON) -m controllers.localcluster.tools $(TOOLS)

lint-imports: ## check the import rule (pyproject.toml's import-linter contracts); fails on a forbidden import
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} lint-imports --config pyproject.toml --no-cache

test: setup tools lint-imports ## the import rule, then the whole test suite, against a real local control plane
	$(PYTHON) -m pytest

faults: setup tools ## the full fault-injection suite (tests/faults: 100 Kustomizations, 20 kills); make test runs its short version
	FLUXPY_FAULTS=full $(PYTHON) -m pytest tests/faults

demo: setup tools ## the main job on the embedded local control plane: the whole bootstrap story
	$(FLUXPY) dev up
	$(PYTHON) -m bootstrap.demo up
	@echo "The local control plane keeps running: eval \"\$$($(FLUXPY) dev env)\" to use it, 'make demo-down' to stop it."
	@echo "See it live in a browser: $(FLUXPY) ui --open (with that environment: the graph, why, diffs, actions)."

demo-down: ## stop the demo's Git server, the control plane and the controllers
	$(PYTHON) -m bootstrap.demo down
	$(FLUXPY) dev down

completions: ## regenerate the shell completion scripts under completions/ and the CLI's command index
	$(PYTHON) -c 'from flux_cli.main import write_index; write_index("flux_cli/command_index.py")'
	$(PYTHON) -c 'from pathlib import Path; from flux_cli.main import app; from flux_cli.commands.completion import write_all; write_all(Path("completions"))'

golden: ## regenerate the golden files of CLI and manifest output (then review the diff)
	FLUXPY_UPDATE_GOLDEN=1 $(PYTHON) -m pytest -q tests/manifestgen tests/flux_cli/test_golden_output.py

screenshots: ## copy the UI screenshots the demo's test took (build/screenshots) to docs/images for the README
	@test -f build/screenshots/ui-demo-graph.png || { echo "no screenshots: run 'make test' (or pytest tests/bootstrap/test_demo.py) first"; exit 1; }
	mkdir -p docs/images
	cp build/screenshots/ui-demo-graph.png docs/images/ui-graph.png
	cp build/screenshots/ui-demo-object.png docs/images/ui-object.png

bench: setup tools ## print the benchmark figures (CLI start-up, sources, Kustomizations, HelmReleases, notifications, images, the UI)
	$(PYTHON) tests/bench/cli_startup.py
	$(PYTHON) tests/bench/sources.py
	$(PYTHON) tests/bench/kustomizations.py
	$(PYTHON) tests/bench/helmreleases.py
	$(PYTHON) tests/bench/notifications.py
	$(PYTHON) tests/bench/images.py
	$(PYTHON) tests/bench/ui.py

bench-vs-flux: setup tools ## fluxpy's kustomize-controller side by side with Flux's (builds Flux's from Go modules; long)
	$(PYTHON) tests/bench/vs_flux.py $(BENCH_ARGS)
