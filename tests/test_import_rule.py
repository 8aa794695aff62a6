"""The import rule (pyproject.toml's import-linter contracts, ``make lint-imports``): the repository keeps it,
and the same contracts, run against a small package tree of the same shape, fail on each kind of forbidden
import — so removing or weakening a contract fails here."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

#: an empty module of each package the contracts name
TREE = {
    "controllers/__init__.py": "",
    "controllers/__main__.py": "",
    "controllers/components.py": "",
    "controllers/api/__init__.py": "",
    "controllers/runtime/__init__.py": "import controllers.api\n",
    "controllers/lib/__init__.py": "import controllers.runtime\n",
    "controllers/localcluster/__init__.py": "",
    "controllers/localcluster/dev.py": "import controllers.localcluster.plane\n",
    "controllers/localcluster/plane.py": "",
    "controllers/source/__init__.py": "import controllers.lib\n",
    "controllers/source/common.py": "import controllers.runtime\n",
    "controllers/kustomize/__init__.py": "import controllers.lib\n",
    "controllers/helm/__init__.py": "import controllers.lib\n",
    "controllers/notification/__init__.py": "import controllers.lib\n",
    "controllers/image/__init__.py": "import controllers.lib\n",
    "manifestgen/__init__.py": "import controllers.api\n",
    "bootstrap/__init__.py": "import manifestgen\nimport controllers.lib\n",
    "bootstrap/plan.py": "import bootstrap.repository\nimport bootstrap.ui\n",
    "bootstrap/repository.py": "import bootstrap.ui\n",
    "bootstrap/ui.py": "",
    "flux_cli/__init__.py": "import bootstrap\nimport controllers.lib\n",
    "flux_cli/app.py": "", "flux_cli/main.py": "", "flux_cli/root.py": "", "flux_cli/terminal.py": "",
    "flux_cli/commands/__init__.py": "import flux_cli.web\n",
    "flux_cli/web/__init__.py": "import controllers.lib\n",
}

#: (module that gets the import, module it imports): one per contract
VIOLATIONS = [
    ("controllers.source.bad", "controllers.kustomize"),          # (a) controllers are independent
    ("controllers.kustomize.bad", "controllers.components"),      # (a) only runtime, lib, api
    ("controllers.source.bad", "controllers.localcluster.plane"),  # (a) not the control plane
    ("controllers.kustomize.bad", "controllers.localcluster.dev"),  # (a) nor the dev cluster
    ("controllers.helm.bad", "controllers.kustomize"),            # (a) the helm-controller too
    ("controllers.notification.bad", "controllers.helm"),         # (a) and the notification-controller
    ("controllers.image.bad", "controllers.notification"),        # (a) and the image controllers
    ("controllers.lib.bad", "controllers.source"),                # (b) lib imports no controller
    ("controllers.runtime.bad", "controllers.lib"),               # (b) runtime imports no lib
    ("controllers.api.bad", "controllers.runtime"),               # (b) api imports only itself
    ("flux_cli.bad", "controllers.source"),                       # (c) the CLI uses no controller internals
    ("bootstrap.bad", "controllers.kustomize"),                   # (c)
    ("manifestgen.bad", "controllers.source"),                    # (c)
    ("controllers.lib.bad", "flux_cli"),                          # (d) nothing imports flux_cli
    ("manifestgen.bad", "bootstrap"),                             # (e) layers
    ("controllers.api.bad", "manifestgen"),                       # (e)
    ("bootstrap.repository", "bootstrap.plan"),                   # no circle plan <-> repository
    ("flux_cli.web.bad", "flux_cli.commands"),                    # (f) the UI server registers no command
]


def contracts_config() -> str:
    """The ``[tool.importlinter]`` tables of the repository's pyproject.toml, as they are."""
    keep, out = False, []
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            keep = line.lstrip("[").startswith("tool.importlinter")
        if keep:
            out.append(line)
    assert out, "pyproject.toml has no [tool.importlinter] contracts"
    return "\n".join(out) + "\n"


def lint(root: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--config", str(config), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    for rel, text in TREE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    config = tmp_path / "contracts.toml"
    config.write_text(contracts_config())
    return tmp_path, config


def test_repository_keeps_the_import_rule():
    result = lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_tree_that_keeps_the_rule_passes(tree):
    root, config = tree
    result = lint(root, config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("importer", "imported"), VIOLATIONS, ids=[f"{a}->{b}" for a, b in VIOLATIONS])
def test_a_forbidden_import_fails_the_check(tree, importer, imported):
    root, config = tree
    path = root.joinpath(*importer.split(".")).with_suffix(".py")
    path.write_text(f"import {imported}\n")
    result = lint(root, config)
    assert result.returncode != 0, f"import {imported} in {importer} was not caught:\n{result.stdout}"
    assert "BROKEN" in result.stdout
    assert f"{importer} -> {imported}" in result.stdout, result.stdout
