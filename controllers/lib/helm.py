"""The real ``helm`` binary, run the one way every controller does.

:class:`HelmCLI` finds ``helm`` with ``controllers.localcluster.tools.ensure("helm")`` and runs it with its
own throw-away HELM_* home (configuration, cache, data, plugins, registry login; never the user's) in a
temporary directory, every call bounded in time; a failure (a non-zero exit, the deadline) is one
:class:`HelmError` whose message is helm's ``Error: …`` line(s). ``tls_flags`` writes TLS material into the
private home for ``--ca-file/--cert-file/--key-file``; ``package`` runs ``helm package``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from controllers.lib import credentials

#: Seconds a ``helm`` call may take unless told otherwise.
DEFAULT_TIMEOUT = 60.0


class HelmError(Exception):
    """``helm`` failed; the message is its ``Error: …`` line(s)."""


class HelmCLI:
    """The real ``helm`` with a private HELM_* home (config, cache, data, registry login) in a temporary
    directory: use as a context manager; every call is bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        from controllers.localcluster.tools import ensure

        self.binary = str(ensure("helm"))
        self.timeout = timeout
        self.home: Path | None = None

    def __enter__(self) -> "HelmCLI":
        self.home = Path(tempfile.mkdtemp(prefix="fluxpy-helm-"))
        return self

    def __exit__(self, *exc) -> None:
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    @property
    def registry_config(self) -> str:
        return str(self.home / "registry.json")

    def _env(self) -> dict[str, str]:
        home = self.home
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(HELM_CONFIG_HOME=str(home / "config"), HELM_CACHE_HOME=str(home / "cache"),
                   HELM_DATA_HOME=str(home / "data"), HELM_PLUGINS=str(home / "plugins"),
                   HELM_REGISTRY_CONFIG=self.registry_config,
                   HELM_REPOSITORY_CONFIG=str(home / "repositories.yaml"),
                   HELM_REPOSITORY_CACHE=str(home / "cache" / "repository"),
                   HELM_CONTENT_CACHE=str(home / "cache" / "content"), NO_COLOR="1")
        return env

    def run(self, *args: str, stdin: str | None = None, cwd: str | None = None) -> str:
        """Run ``helm args…``; its stdout, or HelmError with its error message."""
        if self.home is None:
            raise RuntimeError("HelmCLI must be used as a context manager")
        try:
            done = subprocess.run([self.binary, *args], input=stdin, capture_output=True, text=True, cwd=cwd,
                                  env=self._env(), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise HelmError(f"helm {args[0]} timed out after {self.timeout:g}s: context deadline exceeded") from None
        if done.returncode != 0:
            lines = [line.removeprefix("Error: ") for line in done.stderr.strip().splitlines()
                     if line.strip() and not line.startswith(("WARNING:", "level=WARN"))]
            raise HelmError("\n".join(lines) or f"helm {args[0]} exited with {done.returncode}")
        return done.stdout

    def tls_flags(self, tls: credentials.TLSMaterial | None) -> list[str]:
        """``--ca-file/--cert-file/--key-file`` for TLS material written into the private home."""
        if not tls:
            return []
        directory = self.home / "tls"
        directory.mkdir(mode=0o700, exist_ok=True)
        ca, cert, key = tls.write(directory)
        flags = ["--ca-file", ca] if ca else []
        if cert and key:
            flags += ["--cert-file", cert, "--key-file", key]
        return flags

    def package(self, chart_dir: str | os.PathLike, dest: str | os.PathLike, version: str = "") -> Path:
        """``helm package`` (optionally ``--version``); the path of the archive written into ``dest``."""
        os.makedirs(dest, exist_ok=True)
        args = ["package", str(chart_dir), "--destination", str(dest)]
        if version:
            args += ["--version", version]
        out = self.run(*args)
        path = out.strip().rpartition(": ")[2]
        if not path or not os.path.isfile(path):
            raise HelmError(f"helm package wrote no chart: {out.strip()}")
        return Path(path)

    def render_release(self, chart: str | os.PathLike, name: str, namespace: str, values: dict | None = None, *,
                       skip_schema_validation: bool = False) -> dict:
        """The release ``helm install`` would make, without touching a cluster (``--dry-run=client -o json``):
        Helm's release object as its storage holds it (``manifest``, ``hooks`` apart, ``chart``, ``config``,
        ``info``), for a controller to apply and store itself. Templates see ``.Release.IsInstall`` and Helm's
        default ``.Capabilities`` (``helm install`` has no ``--kube-version``; Helm has no client-side upgrade
        render).
        A template error or values rejected by the chart's schema is a HelmError with Helm's message."""
        import json

        import yaml

        values_file = self.home / f"values-{name}.yaml"
        values_file.write_text(yaml.safe_dump(values or {}))
        args = ["install", name, str(chart), "--namespace", namespace, "--dry-run=client", "--output", "json",
                "--values", str(values_file)]
        if skip_schema_validation:
            args.append("--skip-schema-validation")
        try:
            release = json.loads(self.run(*args))
        except HelmError as exc:  # the dry-run install renders upgrades too: helm's "INSTALLATION FAILED" misleads
            raise HelmError(str(exc).removeprefix("INSTALLATION FAILED: ")) from None
        except ValueError as exc:
            raise HelmError(f"helm install --dry-run printed no release: {exc}") from None
        finally:
            values_file.unlink(missing_ok=True)
        return release
