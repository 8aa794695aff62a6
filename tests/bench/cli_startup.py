"""CLI start-up benchmark: prints figures, asserts nothing.

Measures, on this machine:
- wall time of ``fluxpy --help``, ``fluxpy version --client`` and ``fluxpy get kustomizations -A`` with
  100 Kustomizations on the embedded local control plane (first run = cold, then the median of warm runs);
- the import time of the CLI's start-up path and, for scale, of ``import kubernetes``;
- which heavy modules ``get`` loads (it must load none of GitPython, PyGithub, python-gitlab, jinja2).

Run: ``make bench`` (or ``python tests/bench/cli_startup.py [--objects N] [--runs N]``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HEAVY = ("git", "github", "gitlab", "jinja2", "kubernetes")


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def drop_bytecode_cache() -> None:
    """Make the next run 'cold' for Python: remove the project's compiled bytecode."""
    for pyc in ROOT.glob("**/__pycache__/*.pyc"):
        pyc.unlink(missing_ok=True)


def measure(label: str, cmd: list[str], env: dict, runs: int) -> None:
    drop_bytecode_cache()
    cold = timed(cmd, env)
    warm = [timed(cmd, env) for _ in range(runs)]
    print(f"{label:<44} cold {cold * 1000:7.0f} ms   warm median {statistics.median(warm) * 1000:7.0f} ms"
          f"   (min {min(warm) * 1000:.0f} ms, {runs} runs)")


def import_time(module: str, env: dict) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter (python -X importtime), in seconds."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env,
                          capture_output=True, text=True)
    for line in reversed(proc.stderr.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e6
    return float("nan")


def loaded_heavy_modules(args: list[str], env: dict) -> list[str]:
    code = ("import sys; from flux_cli.main import run\n"
            "try:\n    run(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    return [m for m in proc.stderr.strip().splitlines()[-1].split(",") if m] if proc.stderr.strip() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()

    from controllers.api.kinds import kind_by_name
    from controllers.localcluster.plane import ControlPlane
    from controllers.runtime.kube import KubeClient
    from manifestgen.crds import crd_manifests
    from controllers.runtime.apply import apply_staged

    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm runs use bytecode, as an installed CLI does
    fluxpy = [sys.executable, "-m", "flux_cli"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("-- start-up, no cluster")
    measure("fluxpy --help", fluxpy + ["--help"], env, opts.runs)
    measure("fluxpy version --client", fluxpy + ["version", "--client"], env, opts.runs)
    print("-- import time (cumulative, fresh interpreter)")
    for module in ("flux_cli.main", "controllers.runtime.kube", "controllers.api.kinds", "typer", "kubernetes"):
        print(f"import {module:<40} {import_time(module, env) * 1000:7.0f} ms")

    with tempfile.TemporaryDirectory(prefix="fluxpy-bench-") as tmp:
        plane = ControlPlane(Path(tmp))
        t0 = time.perf_counter()
        plane.start()
        print(f"-- local control plane started in {time.perf_counter() - t0:.1f} s")
        try:
            kube = KubeClient.from_kubeconfig(plane.kubeconfig)
            apply_staged(kube, crd_manifests())
            ks = kind_by_name("kustomization")
            kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}, field_manager="bench")
            t0 = time.perf_counter()
            for i in range(opts.objects):
                kube.create(ks, {"apiVersion": ks.api_version, "kind": ks.kind,
                                 "metadata": {"name": f"app-{i:04d}", "namespace": "bench"},
                                 "spec": {"interval": "10m", "path": "./", "prune": True,
                                          "sourceRef": {"kind": "GitRepository", "name": "repo"}}})
            print(f"created {opts.objects} Kustomizations in {time.perf_counter() - t0:.1f} s")
            env_k = dict(env, KUBECONFIG=str(plane.kubeconfig))
            measure(f"fluxpy get kustomizations -A ({opts.objects} objects)", fluxpy + ["get", "kustomizations", "-A"],
                    env_k, opts.runs)
            heavy = loaded_heavy_modules(["get", "kustomizations", "-A"], env_k)
            print(f"heavy modules loaded by 'get': {', '.join(heavy) if heavy else 'none'} (checked: {', '.join(HEAVY)})")
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
