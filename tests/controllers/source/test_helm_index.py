"""Units of the Helm source pieces: Masterminds semver constraints, repository indexes (loaded and rendered
byte for byte as Go renders Helm's IndexFile — the golden files were written by helm's own Go library),
Flux's version choice, URL normalisation, chart metadata, values merging and the build-metadata rules."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from controllers.lib import semver, values
from controllers.source import helm_build, helm_index
from controllers.source.helmchart import revision_metadata
from controllers.source.helmrepo import human_size

TESTDATA = Path(__file__).parent / "testdata" / "helm"


# --------------------------------------------------------------------------- semver

@pytest.mark.parametrize("constraint,version,expected", [
    ("*", "1.2.3", True), ("*", "1.2.3-rc.1", False), (">=1.0.0-0", "1.2.3-rc.1", True),
    ("1.x", "1.9.0", True), ("1.x", "2.0.0", False), ("~1.2", "1.2.9", True), ("~1.2", "1.3.0", False),
    ("^0.3", "0.3.9", True), ("^0.3", "0.4.0", False), ("^1.2.3", "1.9.0", True), ("^1.2.3", "2.0.0", False),
    (">=1.0 <2.0", "1.5.0", True), (">=1.0, <2.0", "2.0.0", False), ("1.0 - 2.0", "2.0.0", True),
    ("1.0 - 2.0", "2.1.0", False), ("!=1.1", "1.1.0", False), ("!=1.1", "1.2.0", True),
    ("<1 || >=3", "3.1.0", True), ("<1 || >=3", "2.0.0", False), (">6", "6.5.0", False), (">6", "7.0.0", True),
    ("<=1.2", "1.2.9", True), ("<=1.2", "1.3.0", False), ("=1.2.3", "1.2.3", True), ("1.2.3", "v1.2.3", True),
])
def test_constraints_follow_masterminds(constraint, version, expected):
    assert semver.new_constraint(constraint).check(semver.new_version(version)) is expected


@pytest.mark.parametrize("bad", ["foo", ">>1", "1.2.3.4", ""])
def test_malformed_constraints_are_rejected(bad):
    with pytest.raises(semver.InvalidConstraint, match="improper constraint"):
        semver.new_constraint(bad)


def test_versions_order_and_metadata():
    v = semver.new_version
    assert v("1.0.0-rc.2") < v("1.0.0-rc.10") < v("1.0.0")
    assert v("1.0.0+a") == v("1.0.0+b")
    assert str(v("1.2.3").with_metadata("abc.7")) == "1.2.3+abc.7"
    with pytest.raises(semver.InvalidVersion):
        semver.parse_version("1.2")  # Flux wants three parts
    assert semver.latest_matching(["6.0.0", "6.1.0", "6.1.1-rc.1", "7.0.0"], "6.x") == "6.1.0"
    assert semver.latest_matching(["1.0", "1.0.0"], "1.0") == "1.0"  # exact match first
    assert semver.latest_matching(["1.0.0"], "9.x") is None


# --------------------------------------------------------------------------- index

@pytest.mark.parametrize("name", ["helm", "tricky"])
def test_index_json_is_byte_identical_to_go(name):
    """The artifact bytes equal what Flux (Go's json.MarshalIndent of Helm's IndexFile) stores."""
    raw = (TESTDATA / f"index-{name}.yaml").read_bytes()
    assert helm_index.index_json(helm_index.load_index(raw)) == (TESTDATA / f"index-{name}.golden.json").read_bytes()


def test_index_json_of_json_input_is_stable():
    raw = (TESTDATA / "index-tricky.yaml").read_bytes()
    rendered = helm_index.index_json(helm_index.load_index(raw))
    assert helm_index.index_json(helm_index.load_index(rendered)) == rendered


def test_invalid_versions_are_dropped_and_entries_sorted():
    index = helm_index.load_index((TESTDATA / "index-tricky.yaml").read_bytes())
    assert [cv["version"] for cv in index.entries["zeta"]] == ["2.0.0-rc.1", "1.10.0", "1.0"]
    assert index.entries["empty"] == []


@pytest.mark.parametrize("doc,message", [
    (b"", "empty index.yaml file"),
    (b"entries: {}\n", "no API version specified"),
    (b"apiVersion: v1\nentries:\n  x:\n  - name: x\n    version: 1.0.0\n    foo: 1\n", 'unknown field "foo"'),
    (b"apiVersion: v1\nentries:\n  x:\n  - name: x\n    version: 1.0\n", "cannot unmarshal number"),
    (b"apiVersion: v1\napiVersion: v2\n", 'key "apiVersion" already set'),
    (b"apiVersion: v1\nentries: {}\n  bad: [\n", "error converting YAML to JSON"),
    (b"<html>not an index</html>\n", "cannot unmarshal string"),
])
def test_malformed_indexes(doc, message):
    with pytest.raises(helm_index.IndexError_, match=message):
        helm_index.load_index(doc)


def test_chart_version_choice():
    doc = b"""apiVersion: v1
entries:
  app:
  - {name: app, version: 1.0.0, urls: [a], created: "2021-01-01T00:00:00Z"}
  - {name: app, version: 1.1.0+b, urls: [b], created: "2021-01-02T00:00:00Z"}
  - {name: app, version: 1.1.0+a, urls: [c], created: "2021-01-01T00:00:00Z"}
  - {name: app, version: 2.0.0-rc.1, urls: [d]}
"""
    index = helm_index.load_index(doc)
    assert index.chart_version("app", "")["urls"] == ["b"]  # newest by time among equal versions
    assert index.chart_version("app", "*")["version"] == "1.1.0+b"
    assert index.chart_version("app", "1.0.0")["urls"] == ["a"]
    assert index.chart_version("app", ">=2.0.0-0")["version"] == "2.0.0-rc.1"
    with pytest.raises(helm_index.ChartReferenceError, match="no 'app' chart with version matching '3.x' found"):
        index.chart_version("app", "3.x")
    with pytest.raises(helm_index.ChartReferenceError, match="no chart name found"):
        index.chart_version("other", "*")


def test_urls():
    assert helm_index.normalize_url("https://charts.example.com/stable") == "https://charts.example.com/stable/"
    assert helm_index.normalize_url("https://charts.example.com//") == "https://charts.example.com/"
    assert helm_index.normalize_url("oci://ghcr.io/org/charts/") == "oci://ghcr.io/org/charts"
    assert helm_index.resolve_chart_url("http://h/charts/", "app-1.0.0.tgz") == "http://h/charts/app-1.0.0.tgz"
    assert helm_index.resolve_chart_url("http://h/charts", "/x/app.tgz") == "http://h/x/app.tgz"
    assert helm_index.resolve_chart_url("http://h/charts/", "https://cdn/app.tgz") == "https://cdn/app.tgz"


def test_time_rendering():
    assert helm_index.format_time("2021-05-01T10:00:00.120000+02:00") == "2021-05-01T10:00:00.12+02:00"
    assert helm_index.format_time("2021-05-01T10:00:00+00:00") == "2021-05-01T10:00:00Z"
    assert helm_index.format_time("") == helm_index.ZERO_TIME


# --------------------------------------------------------------------------- charts

def _archive(files: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content.encode())
            tar.addfile(info, io.BytesIO(content.encode()))
    return raw.getvalue()


def test_chart_metadata_from_archive():
    meta = helm_build.metadata_from_archive(_archive({"app/Chart.yaml": "name: app\nversion: 1.0\n",
                                                      "app/requirements.yaml": "dependencies:\n- name: x\n"}))
    assert (meta["name"], meta["version"], meta["apiVersion"]) == ("app", "1.0", "v1")
    assert meta["dependencies"] == [{"name": "x"}]
    with pytest.raises(ValueError, match="parent directory"):
        helm_build.metadata_from_archive(_archive({"app/../../evil": "x", "app/Chart.yaml": "name: a"}))
    with pytest.raises(ValueError, match="no 'Chart.yaml' found"):
        helm_build.metadata_from_archive(_archive({"app/values.yaml": "{}"}))


def test_values_merge_is_flux_merge_maps():
    merged = values.merge_maps({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2], "e": 3}, "d": {"x": 1}})
    assert merged == {"a": {"b": 1, "c": [2], "e": 3}, "d": {"x": 1}}


def test_values_files_stay_inside_the_source(tmp_path):
    (tmp_path / "values-prod.yaml").write_text("replicas: 3\n")
    merged, used = helm_build.merge_file_values(tmp_path, ["../../values-prod.yaml"], False)
    assert (merged, used) == ({"replicas": 3}, ["../../values-prod.yaml"])  # clamped to the source root
    with pytest.raises(ValueError, match="no values file found at path '/missing.yaml' "
                                         "\\(reference 'missing.yaml'\\)"):
        helm_build.merge_file_values(tmp_path, ["missing.yaml"], False)
    assert helm_build.merge_file_values(tmp_path, ["missing.yaml"], True) == ({}, [])


def test_build_metadata_rules():
    assert revision_metadata("GitRepository", "main@sha1:0123456789abcdef0123") == "0123456789ab"
    assert revision_metadata("GitRepository", "sha1:0123456789abcdef0123") == "0123456789ab"
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    assert revision_metadata("Bucket", digest) == digest[7:19]
    assert helm_build.BuildOptions(values_files=["./values.yaml"]).effective_values_files() == []
    assert helm_build.Build("app", "1.0.0", "/p", ["a.yaml", "b.yaml"], packaged=True).summary() == \
        "packaged 'app' chart with version '1.0.0' and merged values files [a.yaml b.yaml]"


def test_human_size_is_go_units():
    assert [human_size(n) for n in (0, 999, 1234, 1_000_000, 52_428_800)] == ["0B", "999B", "1.234kB", "1MB",
                                                                               "52.43MB"]
