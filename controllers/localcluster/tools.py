"""Find or build the external binaries fluxpy runs: etcd, kube-apiserver, kustomize, helm, sops, age.

Resolution order for each tool (the first hit wins):

1. the tool's environment variable (``FLUXPY_ETCD``, ``FLUXPY_KUBE_APISERVER``, ``FLUXPY_KUSTOMIZE``, ...),
2. ``$KUBEBUILDER_ASSETS`` / setup-envtest's directory (etcd and kube-apiserver only),
3. ``PATH``,
4. fluxpy's cache ``$FLUXPY_CACHE_DIR/bin/<tool>-<version>/<tool>`` (default ``~/.cache/fluxpy``),
5. a build from Go modules with the machine's Go, written into that cache.

Builds use ``GOTOOLCHAIN=local``, ``GOFLAGS=-modcacherw``, ``CGO_ENABLED=0`` and a GOPROXY without
``,direct`` so a module missing from the proxy fails fast. etcd and kube-apiserver cannot be built with a
plain ``go install`` (their go.mod files carry replace directives), so they are built from a throw-away
wrapper module: see :func:`_build_etcd` and :func:`_build_kube_apiserver`.

Run ``python -m controllers.localcluster.tools [TOOL...]`` to resolve (and build) tools ahead of time.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class ToolError(RuntimeError):
    """A tool is missing and cannot be built; the message says what to install."""


@dataclasses.dataclass(frozen=True)
class Tool:
    """An external binary, pinned to a version, and how to build it from Go modules."""

    name: str
    version: str
    #: ``go install`` package path (``@version`` appended); None for tools with a custom build.
    package: str | None = None
    #: the environment variable that points at a user's own binary.
    env: str = ""
    #: whether setup-envtest's asset directories may hold it.
    envtest_asset: bool = False
    #: whether the controller image (Dockerfile) ships it; test-only servers are not.
    in_image: bool = True
    #: for a main package inside a module whose go.mod has local replace directives (``go install``
    #: refuses those): the module path; ``package`` is then the package's path relative to the module.
    module: str | None = None
    #: benchmark-only tools (Flux's own controllers and CLI) are never resolved by default.
    bench_only: bool = False

    @property
    def env_var(self) -> str:
        return self.env or "FLUXPY_" + self.name.upper().replace("-", "_")


KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"

TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("etcd", ETCD_VERSION, envtest_asset=True),
        Tool("kube-apiserver", KUBERNETES_VERSION, envtest_asset=True),
        Tool("kustomize", "v5.8.2", "sigs.k8s.io/kustomize/kustomize/v5"),
        Tool("helm", "v4.3.1", "helm.sh/helm/v4/cmd/helm"),
        Tool("sops", "v3.13.3", "github.com/getsops/sops/v3/cmd/sops"),
        Tool("age", "v1.3.2", "filippo.io/age/cmd/age"),
        Tool("age-keygen", "v1.3.2", "filippo.io/age/cmd/age-keygen"),
        # a real S3-compatible server (posix backend) for the Bucket tests
        Tool("versitygw", "v1.8.0", "github.com/versity/versitygw/cmd/versitygw", in_image=False),
        # Flux's own controllers and CLI, for the side-by-side benchmark only (tests/bench/vs_flux.py)
        *(
            Tool(name, version, package, module=module, in_image=False, bench_only=True,
                 env="FLUXPY_FLUX_" + name.upper().replace("-", "_"))
            for name, module, version, package in (
                ("kustomize-controller", "github.com/fluxcd/kustomize-controller", "v1.7.3", "."),
                ("source-controller", "github.com/fluxcd/source-controller", "v1.7.3", "."),
                ("helm-controller", "github.com/fluxcd/helm-controller", "v1.4.5", "."),
                ("flux", "github.com/fluxcd/flux2/v2", "v2.7.5", "./cmd/flux"),
            )
        ),
    )
}


def cache_dir() -> Path:
    """fluxpy's cache root (``$FLUXPY_CACHE_DIR``, else ``$XDG_CACHE_HOME/fluxpy``, else ``~/.cache/fluxpy``)."""
    if os.environ.get("FLUXPY_CACHE_DIR"):
        return Path(os.environ["FLUXPY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "fluxpy"


def cached_path(tool: Tool) -> Path:
    return cache_dir() / "bin" / f"{tool.name}-{tool.version}" / tool.name


def _envtest_dirs() -> list[str]:
    dirs = []
    if os.environ.get("KUBEBUILDER_ASSETS"):
        dirs.append(os.environ["KUBEBUILDER_ASSETS"])
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    # setup-envtest keeps one directory per version; prefer the newest.
    dirs += sorted(glob.glob(os.path.join(data, "kubebuilder-envtest", "k8s", "*")), reverse=True)
    dirs.append("/usr/local/kubebuilder/bin")
    return dirs


def find(name: str) -> Path | None:
    """Return an existing binary for ``name`` without building, or None."""
    tool = TOOLS[name]
    override = os.environ.get(tool.env_var)
    if override:
        if not os.access(override, os.X_OK):
            raise ToolError(f"{tool.env_var}={override} is not an executable file")
        return Path(override)
    if tool.envtest_asset:
        for d in _envtest_dirs():
            candidate = Path(d) / name
            if os.access(candidate, os.X_OK):
                return candidate
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    cached = cached_path(tool)
    if os.access(cached, os.X_OK):
        return cached
    return None


def ensure(name: str, log=None) -> Path:
    """Return a binary for ``name``, building it from Go modules into the cache when none is found."""
    found = find(name)
    if found:
        return found
    tool = TOOLS[name]
    go = shutil.which("go")
    if not go:
        raise ToolError(
            f"{name} {tool.version} was not found (set {tool.env_var}, or put it on PATH) and cannot be "
            f"built because Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install)"
        )
    target = cached_path(tool)
    target.parent.mkdir(parents=True, exist_ok=True)
    (log or _stderr)(f"building {name} {tool.version} from Go modules (cached in {target.parent}) ...")
    builder = {"etcd": _build_etcd, "kube-apiserver": _build_kube_apiserver}.get(
        name, _build_in_module if tool.module else _go_install
    )
    # Build into a temporary name and rename, so an interrupted build never leaves a broken binary.
    partial = target.with_name(target.name + ".partial")
    builder(tool, partial)
    os.replace(partial, target)
    return target


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def go_env() -> dict[str, str]:
    """The environment Go builds run with: local toolchain, no VCS fallback, static binaries."""
    env = dict(os.environ)
    proxy = env.get("GOPROXY") or _go_env_value("GOPROXY") or "https://proxy.golang.org"
    # Strip ",direct" (and "|direct") so that a module the proxy lacks fails at once.
    proxy = ",".join(p for p in proxy.replace("|", ",").split(",") if p and p not in ("direct", "off"))
    env.update(
        GOTOOLCHAIN="local",
        GOFLAGS="-modcacherw",
        CGO_ENABLED="0",
        GOPROXY=proxy or "https://proxy.golang.org",
        GONOSUMDB=env.get("GONOSUMDB", ""),
    )
    return env


def _go_env_value(key: str) -> str:
    try:
        return subprocess.run(["go", "env", key], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _go(args: list[str], cwd: str | Path) -> str:
    proc = subprocess.run(["go", *args], cwd=cwd, env=go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"'go {' '.join(args)}' failed:\n{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def _go_install(tool: Tool, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"fluxpy-build-{tool.name}-") as gobin:
        env_dir = Path(gobin)
        proc = subprocess.run(
            ["go", "install", f"{tool.package}@{tool.version}"],
            env={**go_env(), "GOBIN": str(env_dir)},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ToolError(f"building {tool.name} {tool.version} failed:\n{proc.stderr.strip()[-4000:]}")
        # go install names the binary after the last path element that is not a major-version suffix
        # (sigs.k8s.io/kustomize/kustomize/v5 -> kustomize).
        parts = tool.package.split("/")
        binary = parts[-2] if len(parts) > 1 and parts[-1][1:].isdigit() and parts[-1][0] == "v" else parts[-1]
        shutil.move(str(env_dir / binary), out)


def module_dir(module: str, version: str) -> Path:
    """The read-only source directory of ``module@version`` in Go's module cache (downloaded if needed)."""
    with tempfile.TemporaryDirectory(prefix="fluxpy-modinfo-") as tmp:
        _wrapper_module(tmp, "modinfo")
        info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], tmp))
    if info.get("Error"):
        raise ToolError(f"cannot download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _build_in_module(tool: Tool, out: Path) -> None:
    """Build a main package as its own module does, from a writable copy of the module's source.

    The module zip leaves out nested modules (``./api``), so local replace directives that point at a
    directory the copy lacks are dropped: the required version of that module then comes from the proxy.
    flux's CLI embeds ``cmd/flux/manifests/*.yaml``, generated by its release from GitHub; a placeholder
    stands in (the benchmark never runs ``flux install``).
    """
    with tempfile.TemporaryDirectory(prefix=f"fluxpy-build-{tool.name}-") as tmp:
        work = Path(tmp, "src")
        _writable_module_copy(tool, module_dir(tool.module, tool.version), work)
        version = tool.version.lstrip("v")
        ldflags = f"-s -w -X main.VERSION={version}"
        _go(["build", "-mod=mod", "-trimpath", "-ldflags", ldflags, "-o", str(out), tool.package], work)


def _writable_module_copy(tool: Tool, source: Path, work: Path) -> None:
    """Copy a module's source to ``work`` as :func:`_build_in_module` builds it (see there)."""
    shutil.copytree(source, work)
    for path in [work, *work.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    mod = json.loads(_go(["mod", "edit", "-json"], work))
    for rep in mod.get("Replace") or []:
        target = rep["New"]["Path"]
        if target.startswith(".") and not (work / target).is_dir():
            _go(["mod", "edit", f"-dropreplace={rep['Old']['Path']}"], work)
    manifests = work / "cmd" / "flux" / "manifests"
    if tool.name == "flux" and not any(manifests.glob("*.yaml")):
        manifests.mkdir(parents=True, exist_ok=True)
        (manifests / "placeholder.yaml").write_text("# built by fluxpy for benchmarks; no install manifests\n")


def _wrapper_module(tmp: str, name: str) -> None:
    Path(tmp, "go.mod").write_text(f"module fluxpy.local/build/{name}\n\ngo 1.26\n")


def _build_etcd(tool: Tool, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="fluxpy-build-etcd-") as tmp:
        _wrapper_module(tmp, "etcd")
        _go(["get", "-tool", f"go.etcd.io/etcd/server/v3@{tool.version}"], tmp)
        _go(["build", "-trimpath", "-o", str(out), "go.etcd.io/etcd/server/v3"], tmp)


def _build_kube_apiserver(tool: Tool, out: Path) -> None:
    version = tool.version
    minor = version.lstrip("v").split(".")[1]
    staging = "v0." + version.lstrip("v").split(".", 1)[1]  # v1.36.3 -> v0.36.3
    with tempfile.TemporaryDirectory(prefix="fluxpy-build-kube-apiserver-") as tmp:
        _wrapper_module(tmp, "kube-apiserver")
        info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], tmp))
        replaces = []
        for line in Path(info["GoMod"]).read_text().splitlines():
            parts = line.replace("replace", "").split()
            # lines look like "k8s.io/api => ./staging/src/k8s.io/api"
            if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
                replaces.append(f"replace {parts[0]} => {parts[0]} {staging}\n")
        if not replaces:
            raise ToolError(f"k8s.io/kubernetes@{version} go.mod lists no staging modules; cannot build")
        with open(Path(tmp, "go.mod"), "a") as f:
            f.write("\n" + "".join(replaces))
        _go(["get", "-tool", f"k8s.io/kubernetes/cmd/kube-apiserver@{version}"], tmp)
        ldflags = []
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            ldflags += [
                f"-X {pkg}.gitVersion={version}",
                f"-X {pkg}.gitMajor=1",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
            ]
        _go(
            ["build", "-trimpath", "-ldflags", " ".join(["-s", "-w", *ldflags]), "-o", str(out),
             "k8s.io/kubernetes/cmd/kube-apiserver"],
            tmp,
        )


def main(argv: list[str]) -> int:
    """Resolve (building when needed) each named tool, or all; report every failure, exit 1 if any."""
    failed = 0
    for name in argv or [name for name, tool in TOOLS.items() if not tool.bench_only]:
        try:
            if name not in TOOLS:
                raise ToolError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
            print(f"{name}: {ensure(name)}", flush=True)
        except ToolError as exc:
            print(f"✗ {name}: {exc}", file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
