"""How controllers.localcluster.tools finds binaries: env var, PATH, cache, else a build (or a clear error)."""
from __future__ import annotations

from pathlib import Path

import pytest

from controllers.localcluster import tools
from controllers.localcluster.plane import ControlPlane, ControlPlaneError


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user binaries anywhere: empty cache, PATH without Go or tools, no envtest assets."""
    for tool in tools.TOOLS.values():
        monkeypatch.delenv(tool.env_var, raising=False)
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("FLUXPY_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return tmp_path


def test_env_var_wins_over_path_and_cache(isolated, monkeypatch):
    tool = tools.TOOLS["kustomize"]
    cached = _exe(tools.cached_path(tool))
    on_path = _exe(isolated / "empty-path" / "kustomize")
    mine = _exe(isolated / "mine" / "kustomize")
    monkeypatch.setenv(tool.env_var, str(mine))
    assert tools.find("kustomize") == mine
    monkeypatch.delenv(tool.env_var)
    assert tools.find("kustomize") == on_path
    on_path.unlink()
    assert tools.find("kustomize") == cached
    assert tools.ensure("kustomize") == cached


def test_envtest_assets_come_before_path(isolated, monkeypatch):
    assets = isolated / "assets"
    etcd = _exe(assets / "etcd")
    _exe(isolated / "empty-path" / "etcd")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert tools.find("etcd") == etcd


def test_env_var_that_is_not_executable_is_an_error(isolated, monkeypatch):
    monkeypatch.setenv("FLUXPY_HELM", str(isolated / "nope"))
    with pytest.raises(tools.ToolError, match="FLUXPY_HELM=.* is not an executable file"):
        tools.find("helm")


def test_missing_binary_without_go_says_what_to_install(isolated):
    with pytest.raises(tools.ToolError) as err:
        tools.ensure("kustomize")
    message = str(err.value)
    assert "FLUXPY_KUSTOMIZE" in message and "install Go" in message


def test_control_plane_reports_missing_binaries(isolated):
    with pytest.raises(ControlPlaneError) as err:
        ControlPlane(isolated / "plane").start(timeout=10)
    message = str(err.value)
    assert message.startswith("etcd ") and "FLUXPY_ETCD" in message and "install Go" in message


def test_main_without_names_skips_benchmark_only_tools(isolated, monkeypatch, capsys):
    """`make tools` (main with no names) never builds Flux's own binaries; naming one builds it."""
    resolved = []
    monkeypatch.setattr(tools, "ensure", lambda name, log=None: resolved.append(name) or Path("/bin/true"))
    assert tools.main([]) == 0
    bench_only = {name for name, tool in tools.TOOLS.items() if tool.bench_only}
    assert bench_only >= {"kustomize-controller", "source-controller", "flux"}
    assert resolved and not bench_only & set(resolved)
    resolved.clear()
    assert tools.main(["flux"]) == 0
    assert resolved == ["flux"]


def test_a_module_copy_drops_the_local_replaces_its_zip_lacks(tmp_path):
    """Module zips leave nested modules out: their ``./`` replaces are dropped, the others kept (real ``go``)."""
    import json
    import shutil
    import subprocess

    if shutil.which("go") is None:
        pytest.skip("no go toolchain")
    source = tmp_path / "module"
    (source / "lib").mkdir(parents=True)
    (source / "go.mod").write_text(
        "module example.com/tool\n\ngo 1.22\n\n"
        "replace example.com/tool/api => ./api\n\nreplace example.com/tool/lib => ./lib\n\n"
        "replace example.com/other => example.com/fork v1.0.0\n")
    (source / "lib" / "go.mod").write_text("module example.com/tool/lib\n")
    (source / "go.mod").chmod(0o444)  # as in the module cache
    work = tmp_path / "work"
    tool = tools.Tool("flux", "v2.7.5", package="./cmd/flux", module="example.com/tool")
    tools._writable_module_copy(tool, source, work)
    edited = json.loads(subprocess.run(["go", "mod", "edit", "-json"], cwd=work, capture_output=True, text=True,
                                       check=True).stdout)
    assert sorted(r["Old"]["Path"] for r in edited["Replace"]) == ["example.com/other", "example.com/tool/lib"]
    assert (work / "cmd" / "flux" / "manifests" / "placeholder.yaml").is_file()
