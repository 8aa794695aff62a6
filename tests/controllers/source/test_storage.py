"""Artifact storage: normalised tarballs, retention, safe extraction, the artifact server, .sourceignore."""
from __future__ import annotations

import argparse
import gzip
import io
import os
import socket
import struct
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from controllers.lib import ignore
from controllers.source.common import add_arguments, artifact_server_from_args, storage_from_args
from controllers.source.storage import ArtifactServer, Storage
from controllers.lib.archive import UnsafeArchive, extract_tarball, file_digest


def make_tree(root: Path, files: dict[str, str], order=None) -> Path:
    for rel in order or files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    return root


FILES = {"README.md": "hello\n", "deploy/app.yaml": "kind: ConfigMap\n", "deploy/sub/x.yaml": "a: 1\n",
         "run.sh": "#!/bin/sh\n"}


@pytest.fixture
def storage(tmp_path) -> Storage:
    return Storage(tmp_path / "storage", "source-controller.flux-system.svc.cluster.local.")


def test_artifact_path_and_url(storage):
    path = storage.artifact_path("GitRepository", "flux-system", "podinfo", "abc.tar.gz")
    assert path == "gitrepository/flux-system/podinfo/abc.tar.gz"
    artifact = storage.store_bytes(path, b"data")
    assert artifact["url"] == "http://source-controller.flux-system.svc.cluster.local./" + path
    assert artifact["digest"].startswith("sha256:") and artifact["size"] == 4
    assert set(artifact) == {"path", "url", "digest", "size", "lastUpdateTime"}
    assert Storage(storage.base_dir, "https://example.com/base/").url_for("a/b") == "https://example.com/base/a/b"


def test_equal_content_gives_equal_digest(storage, tmp_path):
    one = make_tree(tmp_path / "one", FILES)
    two = make_tree(tmp_path / "two", FILES, order=reversed(list(FILES)))
    os.chmod(one / "run.sh", 0o755)
    os.chmod(two / "run.sh", 0o711)  # any executable bit: the same normalised mode
    os.chmod(two / "README.md", 0o666)
    for path in (two / "README.md", two / "deploy" / "app.yaml", two / "deploy"):
        os.utime(path, (1_000_000, 1_000_000))
    if os.geteuid() == 0:
        os.chown(two / "deploy" / "app.yaml", 1234, 5678)
    a = storage.archive("gitrepository/ns/one/a.tar.gz", one)
    b = storage.archive("gitrepository/ns/two/b.tar.gz", two)
    assert a["digest"] == b["digest"] and a["size"] == b["size"]
    (two / "README.md").write_text("changed\n")
    c = storage.archive("gitrepository/ns/two/c.tar.gz", two)
    assert c["digest"] != a["digest"]
    assert file_digest(storage.local_path(a["path"])) == a["digest"]


def test_tar_headers_are_normalised_like_flux(storage, tmp_path):
    src = make_tree(tmp_path / "src", FILES)
    os.chmod(src / "run.sh", 0o755)
    os.symlink("README.md", src / "link")  # symlinks are left out, as Flux's Archive does
    artifact = storage.archive("gitrepository/ns/n/x.tar.gz", src)
    raw = storage.local_path(artifact["path"]).read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name.rstrip("/") for m in members]
    assert names == [".", "README.md", "deploy", "deploy/app.yaml", "deploy/sub", "deploy/sub/x.yaml", "run.sh"]
    modes = {m.name.rstrip("/"): m.mode for m in members}
    assert modes["deploy"] == 0o750 and modes["README.md"] == 0o600 and modes["run.sh"] == 0o700
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    assert oct(os.stat(storage.local_path(artifact["path"])).st_mode & 0o777) == "0o600"


def test_has_checks_existence_and_digest(storage):
    artifact = storage.store_bytes("bucket/ns/b/one.tar.gz", b"one")
    assert storage.has(artifact)
    assert not storage.has({**artifact, "digest": "sha256:" + "0" * 64})
    assert not storage.has({**artifact, "path": "bucket/ns/b/missing.tar.gz"})
    time.sleep(0.01)
    storage.local_path(artifact["path"]).write_bytes(b"tampered")
    assert not storage.has(artifact)
    assert not storage.has(None)


def test_local_path_stays_inside_storage(storage):
    with pytest.raises(ValueError):
        storage.local_path("../../etc/passwd")


def test_store_file_and_archive_filter(storage, tmp_path):
    src = make_tree(tmp_path / "src", {"a.yaml": "a", "b.txt": "b"})
    stored = storage.store_file("helmchart/ns/c/c.tgz", src / "a.yaml")
    assert storage.local_path(stored["path"]).read_text() == "a"
    artifact = storage.archive("bucket/ns/b/x.tar.gz", src, ignore=lambda rel, is_dir: rel.endswith(".txt"))
    with tarfile.open(storage.local_path(artifact["path"])) as tar:
        assert [m.name for m in tar.getmembers() if m.isfile()] == ["a.yaml"]


def test_retention_keeps_the_last_two(storage):
    paths = []
    for i in range(5):
        path = storage.artifact_path("GitRepository", "ns", "repo", f"{i}.tar.gz")
        storage.store_bytes(path, str(i).encode())
        os.utime(storage.local_path(path), (time.time() - 50 + i, time.time() - 50 + i))
        paths.append(path)
    (storage.local_path(paths[0]).parent / "x.tar.gz.lock").write_text("")
    removed = storage.garbage_collect("GitRepository", "ns", "repo", paths[-1])
    assert sorted(removed) == sorted(paths[:3])
    left = sorted(p.name for p in storage.local_path(paths[0]).parent.iterdir())
    assert left == ["3.tar.gz", "4.tar.gz", "x.tar.gz.lock"]
    # expired artifacts go even under the count; the current one always stays
    os.utime(storage.local_path(paths[3]), (time.time() - 3600, time.time() - 3600))
    os.utime(storage.local_path(paths[4]), (time.time() - 3600, time.time() - 3600))
    assert storage.garbage_collect("GitRepository", "ns", "repo", paths[4]) == [paths[3]]
    storage.remove_all("GitRepository", "ns", "repo")
    assert not storage.local_path(paths[0]).parent.exists()


def _tarball(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, type_=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type_, target
    return info, None


@pytest.mark.parametrize("entries, what", [
    ([_file("../evil")], "invalid name"),
    ([_file("a/../../evil")], "invalid name"),
    ([_file("/etc/evil")], "invalid name"),
    ([_link("escape", "../../etc")], "outside"),
    ([_link("abs", "/etc/passwd")], "outside"),
    ([_link("d", "."), _link("d/e", "../..")], "outside"),
    ([_link("hard", "../outside", tarfile.LNKTYPE)], "outside"),
])
def test_extract_rejects_unsafe_archives(tmp_path, entries, what):
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive, match=what):
        extract_tarball(_tarball(entries), dest)
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_extract_rejects_special_files_and_oversize(tmp_path):
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(UnsafeArchive, match="unsupported"):
        extract_tarball(_tarball([(fifo, None)]), tmp_path / "a")
    with pytest.raises(UnsafeArchive, match="bigger"):
        extract_tarball(_tarball([_file("big", b"x" * 100)]), tmp_path / "b", max_size=10)


def test_extract_round_trip_with_inner_links(storage, tmp_path):
    src = make_tree(tmp_path / "src", FILES)
    os.chmod(src / "run.sh", 0o755)
    artifact = storage.archive("gitrepository/ns/n/x.tar.gz", src)
    extract_tarball(storage.local_path(artifact["path"]), tmp_path / "out")
    assert (tmp_path / "out" / "deploy" / "sub" / "x.yaml").read_text() == "a: 1\n"
    assert os.access(tmp_path / "out" / "run.sh", os.X_OK)
    extract_tarball(_tarball([_file("dir/f", b"data"), _link("dir/l", "f"), _link("up", "dir/f"),
                              _link("hard", "dir/f", tarfile.LNKTYPE)]), tmp_path / "links")
    assert (tmp_path / "links" / "up").read_bytes() == b"data"
    assert (tmp_path / "links" / "hard").read_bytes() == b"data"
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        info, data = _file("p.txt", b"plain")
        tar.addfile(info, io.BytesIO(data))
    extract_tarball(plain.getvalue(), tmp_path / "plain")  # uncompressed tarballs are accepted too
    assert (tmp_path / "plain" / "p.txt").read_bytes() == b"plain"


def test_server_serves_stored_files(storage):
    artifact = storage.store_bytes("ocirepository/ns/o/sha.tar.gz", b"payload")
    server = ArtifactServer(storage, "127.0.0.1:0").start()
    try:
        base = f"http://127.0.0.1:{server.port}/"
        with urllib.request.urlopen(base + artifact["path"], timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"payload"
            assert resp.headers["Content-Length"] == "7"
        head = urllib.request.Request(base + artifact["path"], method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b""
        for missing in ("ocirepository/ns/o/none.tar.gz", "ocirepository/ns/o", "..%2F..%2Fetc%2Fpasswd"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + missing, timeout=5)
            assert err.value.code == 404
    finally:
        server.stop()


def test_a_consumer_hanging_up_mid_download_prints_no_traceback(storage, capfd):
    """A consumer killed (or timed out) while it downloads an artifact is no error of the server's."""
    artifact = storage.store_bytes("ocirepository/ns/o/big.tar.gz", os.urandom(8 << 20))
    server = ArtifactServer(storage, "127.0.0.1:0").start()
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
                conn.sendall(f"GET /{artifact['path']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert conn.recv(4096).startswith(b"HTTP/1.0 200")
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/{artifact['path']}", timeout=10) as resp:
            assert len(resp.read()) == 8 << 20  # and it still serves
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_storage_flags_local_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("FLUXPY_STATE_DIR", str(tmp_path / "state"))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--storage-addr", "127.0.0.1:0"])
    storage = storage_from_args(args)
    assert storage is storage_from_args(args)
    assert storage.base_dir == tmp_path / "state" / "storage" / "source-controller"
    port = int(args.storage_addr.rpartition(":")[2])
    assert port > 0 and storage.advertised_address == f"127.0.0.1:{port}"
    assert storage.retention_records == 2 and storage.retention_ttl == 60
    server = artifact_server_from_args(args)
    assert server is artifact_server_from_args(args) and server.addr == args.storage_addr
    explicit = parser.parse_args(["--storage-path", str(tmp_path / "data"), "--storage-adv-addr", "sc.example",
                                  "--artifact-retention-records", "5", "--artifact-retention-ttl", "2m"])
    storage = storage_from_args(explicit)
    assert storage.base_dir == tmp_path / "data" and storage.advertised_address == "sc.example"
    assert storage.retention_records == 5 and storage.retention_ttl == 120


# --------------------------------------------------------------------------- .sourceignore


def excluded(filter_, paths: list[str]) -> set[str]:
    return {p for p in paths if filter_(p.rstrip("/"), p.endswith("/"))}


def test_default_excludes_apply_only_without_patterns(tmp_path):
    paths = [".git/", ".git/config", ".gitignore", "logo.png", ".github/", ".github/workflows/ci.yaml",
             "deploy/", "deploy/.sops.yaml", "deploy/app.yaml", "x.tar.gz"]
    assert excluded(ignore.archive_filter([]), paths) == {
        ".git/", ".git/config", ".gitignore", "logo.png", ".github/", ".github/workflows/ci.yaml",
        "deploy/.sops.yaml", "x.tar.gz"}
    only = ignore.archive_filter(ignore.read_patterns("*.txt"))
    assert excluded(only, paths) == {".git/", ".git/config", ".gitignore"}


def test_sourceignore_semantics(tmp_path):
    make_tree(tmp_path, {".sourceignore": "# comment\n\n/deploy/*.yaml\n!deploy/keep.yaml\nbuild/\n",
                         "sub/.sourceignore": "*.md\n", "x": ""})
    filter_ = ignore.source_filter(tmp_path, "secret.yaml\n")
    paths = ["deploy/app.yaml", "deploy/keep.yaml", "deploy/nested/app.yaml", "other/deploy/app.yaml",
             "build/", "build/out.txt", "build", "README.md", "sub/README.md", "sub/x.yaml", "a/secret.yaml"]
    assert excluded(filter_, paths) == {"deploy/app.yaml", "build/", "build/out.txt", "sub/README.md",
                                        "a/secret.yaml"}


def test_glob_patterns():
    p = ignore.Pattern("docs/**/draft")
    assert p.match(["docs", "a", "b", "draft"], False) == ignore.EXCLUDE
    assert p.match(["docs", "draft", "x"], False) == ignore.EXCLUDE
    assert p.match(["other", "draft"], False) == ignore.NO_MATCH
    assert ignore.Pattern("**/.flux.yaml").match(["a", ".flux.yaml"], False) == ignore.EXCLUDE
    assert ignore.Pattern("[^a]*.yaml").match(["b.yaml"], False) == ignore.EXCLUDE
    assert ignore.Pattern("[^a]*.yaml").match(["a.yaml"], False) == ignore.NO_MATCH
    assert ignore.Pattern("[").match(["["], False) == ignore.NO_MATCH  # malformed: never matches
    assert ignore.Pattern("a?c").match(["abc"], False) == ignore.EXCLUDE


def test_gzip_of_archive_is_plain_gzip(storage, tmp_path):
    src = make_tree(tmp_path / "src", {"f": "x"})
    artifact = storage.archive("gitrepository/ns/n/x.tar.gz", src)
    with gzip.open(storage.local_path(artifact["path"])) as f:
        assert f.read(1)


def test_link_points_next_to_the_artifact_and_is_replaced(storage):
    first = storage.store_bytes("helmchart/ns/c/c-1.0.0.tgz", b"one")
    second = storage.store_bytes("helmchart/ns/c/c-1.1.0.tgz", b"two")
    assert storage.link(first["path"], "latest.tar.gz") == storage.url_for("helmchart/ns/c/latest.tar.gz")
    assert storage.link(second["path"], "latest.tar.gz") == storage.url_for("helmchart/ns/c/latest.tar.gz")
    link = storage.base_dir / "helmchart/ns/c/latest.tar.gz"
    assert os.readlink(link) == "c-1.1.0.tgz" and link.read_bytes() == b"two"
    assert sorted(p.name for p in link.parent.iterdir()) == ["c-1.0.0.tgz", "c-1.1.0.tgz", "latest.tar.gz"]


def test_secure_join_stops_at_a_symlink_loop(tmp_path):
    from controllers.lib.archive import SymlinkLoop, secure_join

    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(SymlinkLoop, match="too many levels of symbolic links") as caught:
        secure_join(tmp_path, "loop/x")
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ValueError)


def test_secure_join_never_leaves_the_root(tmp_path):
    from controllers.lib.archive import secure_join

    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../..", root / "dir" / "up")
    real = Path(os.path.realpath(root))
    assert secure_join(root, "dir/x") == real / "dir" / "x"
    assert secure_join(root, "../../etc/passwd") == real / "etc" / "passwd"
    assert secure_join(root, "abs/passwd") == real / "etc" / "passwd"
    assert secure_join(root, "dir/up/x") == real / "x"


def test_storage_address_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("STORAGE_ADDR", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for component, port in (("source-controller", 9090), ("source-watcher", 9091)):
        args = parser.parse_args([f"--storage-path={tmp_path / component}"])
        storage = storage_from_args(args, component)
        assert args.storage_addr == f"127.0.0.1:{port}" and storage.advertised_address == f"127.0.0.1:{port}"


def test_storage_flags_in_a_pod(monkeypatch, tmp_path):
    from controllers.source import common

    monkeypatch.setattr(common, "in_pod", lambda: True)
    monkeypatch.setenv("RUNTIME_NAMESPACE", "flux-system")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([f"--storage-path={tmp_path}"])  # /data is the Pod's default; not writable here
    storage = storage_from_args(args)
    assert args.storage_addr == ":9090"
    assert storage.advertised_address == "source-controller.flux-system.svc.cluster.local."
    assert storage.url_for("gitrepository/a/b/c.tar.gz") == \
        "http://source-controller.flux-system.svc.cluster.local./gitrepository/a/b/c.tar.gz"
