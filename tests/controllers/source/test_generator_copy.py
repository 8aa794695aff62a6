"""The ArtifactGenerator's copy operations, content hash and source digest (pure, on temporary directories).

The semantics are source-watcher v2.0's (Flux 2.7): Go's fs.Glob for ``from`` (``**`` is ``*`` within one
element, but ``dir/**`` copies ``dir``'s contents recursively), full match paths kept under the destination
for other globs, doublestar ``exclude`` patterns matched against the glob matches' paths and, inside a
copied directory, against paths relative to it.
"""
from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
import yaml

from controllers.source.generator import (CopyError, ObservedSource, apply_copy_operations, dir_hash, excluded,
                                          go_glob, hash_observed_sources)

SOURCE = {
    "config.yaml": "kind: ConfigMap\n",
    "configs/a.yaml": "a: 1\n",
    "configs/b.yaml": "b: 1\n",
    "configs/README.md": "readme\n",
    "configs/sub/c.yaml": "c: 1\n",
    "configs/sub/d.md": "d\n",
    "configs/testdata/t.yaml": "t: 1\n",
    "charts/podinfo/Chart.yaml": "name: podinfo\n",
    "charts/podinfo/values.yaml": "replicas: 1\nimage:\n  tag: '1.0'\n  pullPolicy: IfNotPresent\nports: [80, 443]\n",
    "values-prod.yaml": "replicas: 3\nimage:\n  tag: '2.0'\nports: [8080]\n---\nextra: true\n",
}


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "src"
    for rel, content in SOURCE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return root


def copy(tmp_path: Path, source: Path, *ops: dict) -> dict[str, str]:
    staging = tmp_path / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    apply_copy_operations(list(ops), {"src": source}, staging)
    return tree(staging)


@pytest.mark.parametrize("op, expected", [
    ({"from": "@src/config.yaml", "to": "@artifact/apps/app.yaml"}, {"apps/app.yaml"}),
    ({"from": "@src/config.yaml", "to": "@artifact/apps/"}, {"apps/config.yaml"}),
    ({"from": "@src/configs/*.yaml", "to": "@artifact/apps/"}, {"apps/configs/a.yaml", "apps/configs/b.yaml"}),
    ({"from": "@src/configs/", "to": "@artifact/apps/"},
     {"apps/configs/" + p for p in ("a.yaml", "b.yaml", "README.md", "sub/c.yaml", "sub/d.md", "testdata/t.yaml")}),
    ({"from": "@src/configs/**", "to": "@artifact/apps/", "exclude": ["*.md", "**/testdata/**"]},
     {"apps/a.yaml", "apps/b.yaml", "apps/README.md", "apps/sub/c.yaml"}),
    ({"from": "@src/configs/*.yaml", "to": "@artifact/", "exclude": ["configs/b.yaml"]}, {"configs/a.yaml"}),
    ({"from": "@src/charts/", "to": "@artifact/"}, {"charts/podinfo/Chart.yaml", "charts/podinfo/values.yaml"}),
    ({"from": "@src/*/podinfo/Chart.yaml", "to": "@artifact/x/"}, {"x/charts/podinfo/Chart.yaml"}),
])
def test_cp_like_semantics(tmp_path, source, op, expected):
    assert set(copy(tmp_path, source, op)) == expected


def test_whole_source_and_later_operations_overwrite(tmp_path, source):
    files = copy(tmp_path, source,
                 {"from": "@src/", "to": "@artifact/"},
                 {"from": "@src/configs/a.yaml", "to": "@artifact/config.yaml"})
    assert set(files) == set(SOURCE) | {"run.sh"}
    assert files["config.yaml"] == "a: 1\n"
    assert (tmp_path / "staging" / "run.sh").stat().st_mode & 0o111


def test_merge_strategy_merges_yaml_maps_and_replaces_lists(tmp_path, source):
    files = copy(tmp_path, source,
                 {"from": "@src/charts/", "to": "@artifact/"},
                 {"from": "@src/values-prod.yaml", "to": "@artifact/charts/podinfo/values.yaml", "strategy": "Merge"})
    assert yaml.safe_load(files["charts/podinfo/values.yaml"]) == {
        "replicas": 3, "image": {"tag": "2.0", "pullPolicy": "IfNotPresent"}, "ports": [8080], "extra": True}
    # Merge into a file that does not exist yet is a plain copy
    files = copy(tmp_path / "again", source,
                 {"from": "@src/values-prod.yaml", "to": "@artifact/v.yaml", "strategy": "Merge"})
    assert files["v.yaml"] == SOURCE["values-prod.yaml"]


@pytest.mark.parametrize("op, message", [
    ({"from": "@src/nothing/*.yaml", "to": "@artifact/"}, "no files match pattern 'nothing/*.yaml' in source 'src'"),
    ({"from": "@src/configs/*.md", "to": "@artifact/", "exclude": ["**/*.md"]},
     "all files matching pattern 'configs/*.md' in source 'src' were excluded"),
    ({"from": "@other/x.yaml", "to": "@artifact/"}, "source alias 'other' not found"),
    ({"from": "@src/missing.yaml", "to": "@artifact/"}, "source 'missing.yaml' does not exist"),
    ({"from": "@src/../outside.yaml", "to": "@artifact/"}, "path escapes from parent"),
    ({"from": "@src/config.yaml", "to": "@artifact/../../x.yaml"}, "path escapes from parent"),
    ({"from": "@src/configs/[a.yaml", "to": "@artifact/"}, "syntax error in pattern"),
    ({"from": "@src/config.yaml", "to": "@elsewhere/x"}, "destination must start with '@artifact/'"),
    ({"from": "src/config.yaml", "to": "@artifact/"}, "source must start with '@'"),
    ({"from": "@src/config.yaml", "to": "@artifact/", "exclude": ["{a,b"]}, "invalid exclude pattern '{a,b'"),
    ({"from": "@src/values-prod.yaml", "to": "@artifact/run.sh", "strategy": "Merge"}, None),
])
def test_copy_errors_name_the_operation_and_cause(tmp_path, source, op, message):
    ops = [op]
    if op.get("strategy") == "Merge":  # merging YAML into a shell script fails to parse
        ops = [{"from": "@src/run.sh", "to": "@artifact/run.sh"}, {**op, "from": "@src/configs/README.md"}]
        (source / "configs" / "README.md").write_text("- a list\n")
        message = "cannot unmarshal YAML document"
    with pytest.raises(CopyError) as err:
        copy(tmp_path, source, *ops)
    assert str(err.value).startswith(f"failed to apply copy operation from '{ops[-1]['from']}' to '{ops[-1]['to']}': ")
    assert message in str(err.value)


def test_symlinks_leaving_the_source_are_refused(tmp_path, source):
    outside = tmp_path / "secret.txt"
    outside.write_text("do not copy\n")
    (source / "link.txt").symlink_to(outside)
    with pytest.raises(CopyError, match="path escapes from parent"):
        copy(tmp_path, source, {"from": "@src/link.txt", "to": "@artifact/"})


def test_go_glob_and_doublestar():
    assert excluded("b.md", ["*.md"]) and not excluded("a/b.md", ["*.md"])
    assert excluded("a/b.md", ["**/*.md"]) and excluded("b.md", ["**/*.md"])
    assert excluded("testdata", ["**/testdata/**"]) and excluded("x/testdata/y/z", ["**/testdata/**"])
    assert excluded("x.yaml", ["{x,y}.yaml"]) and not excluded("z.yaml", ["{x,y}.yaml"])
    assert excluded("a/x", ["a/**"]) and excluded("a", ["a/**"]) and not excluded("b/a", ["a/**"])


def test_go_glob_matches_one_element_per_star(source):
    assert go_glob(source, "configs/**") == ["configs/README.md", "configs/a.yaml", "configs/b.yaml",
                                            "configs/sub", "configs/testdata"]
    assert go_glob(source, "*/sub/*.yaml") == ["configs/sub/c.yaml"]
    assert go_glob(source, "config?.yaml") == []
    assert go_glob(source, "[cv]*.yaml") == ["config.yaml", "values-prod.yaml"]


def test_dir_hash_is_adler32_over_file_lines(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_bytes(b"hello")
    (tmp_path / "d" / "sub" / "a.txt").write_bytes(b"world")
    lines = f"{zlib.adler32(b'hello'):x}  art/b.txt\n{zlib.adler32(b'world'):x}  art/sub/a.txt\n"
    assert dir_hash(tmp_path / "d", "art") == str(zlib.adler32(lines.encode()))
    (tmp_path / "e").mkdir()
    assert dir_hash(tmp_path / "e", "art") == "1"


def test_observed_sources_digest():
    sources = {"b": ObservedSource("sha256:2", "v2", "http://x/b"), "a": ObservedSource("sha256:1", "v1", "http://x/a")}
    text = "a=[digest=sha256:1,revision=v1,url=http://x/a]|b=[digest=sha256:2,revision=v2,url=http://x/b]"
    assert hash_observed_sources(sources) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
