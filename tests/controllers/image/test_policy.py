"""ImagePolicy tag selection, and controllers.lib.semver (its ranges). ``semver_cases.json`` holds what the reference implementation (Masterminds/semver
v3.4.0, the library Flux 2.7's image-reflector-controller uses) answers for 46 ranges over 44 tags, generated
once by a small Go program: every range must match exactly the same tags (or fail the same way)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from controllers.image.policy import Policy, PolicyError, go_parse_float
from controllers.lib import semver
from controllers.lib.goregex import compile_go, go_expand

CASES = json.loads((Path(__file__).parent / "semver_cases.json").read_text())


@pytest.mark.parametrize("constraint", sorted(CASES["ranges"]))
def test_semver_ranges_match_the_reference_implementation(constraint):
    expected = CASES["ranges"][constraint]
    if "error" in expected:
        with pytest.raises(semver.InvalidConstraint) as info:
            semver.new_constraint(constraint)
        assert str(info.value) == expected["error"]
        return
    constraints = semver.new_constraint(constraint)
    matched = [v for v in CASES["versions"] if (parsed := tag_version(v)) is not None and constraints.check(parsed)]
    assert matched == expected["matches"]


def tag_version(tag: str):
    try:
        return semver.parse_version(tag)
    except semver.InvalidVersion:
        return None


@pytest.mark.parametrize("policy, tags, latest", [
    ({"semver": {"range": "1.0.x"}}, ["1.0.0", "1.0.0.1", "1.0.0p", "1.0.1", "1.2.0", "0.1.0"], "1.0.1"),
    ({"semver": {"range": "1.0.x"}}, ["v1.2.3", "v1.0.0", "v0.1.0"], "v1.0.0"),
    ({"semver": {"range": ">=1.0.0-0"}}, ["1.0.0-rc.1", "1.0.0-rc.10", "1.0.0-rc.2"], "1.0.0-rc.10"),
    ({"semver": {"range": ">=1.0.0"}}, ["1.0.0", "1.1.0-rc.1"], "1.0.0"),
    ({"alphabetical": {}}, ["RELEASE.2023-01-31", "RELEASE.2024-01-01", "RELEASE.2023-12-31"], "RELEASE.2024-01-01"),
    ({"alphabetical": {"order": "desc"}}, ["b", "a", "c"], "a"),
    ({"alphabetical": {"order": "asc"}}, ["B", "a"], "a"),
    ({"numerical": {"order": "asc"}}, ["1", "10", "9", "1.5", "-3"], "10"),
    ({"numerical": {"order": "desc"}}, ["1", "10", "9", "1.5", "-3"], "-3"),
])
def test_latest(policy, tags, latest):
    assert Policy(policy).latest(tags) == latest


def test_filter_tags_with_extract_maps_back_to_the_original_tag():
    policy = Policy({"numerical": {"order": "asc"}},
                    {"pattern": r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", "extract": "$ts"})
    tags = ["main-abc123-100", "main-def456-250", "feature-x-999", "main-0a0a-099", "latest"]
    assert policy.filter(tags) == {"100": "main-abc123-100", "250": "main-def456-250", "099": "main-0a0a-099"}
    assert policy.latest(tags) == "main-def456-250"
    semver = Policy({"semver": {"range": ">=1.0.0"}}, {"pattern": r"^v(\d+\.\d+\.\d+)-alpine$", "extract": "$1"})
    assert semver.latest(["v1.2.0-alpine", "v1.10.0-alpine", "v2.0.0", "v1.11.0-debian"]) == "v1.10.0-alpine"


@pytest.mark.parametrize("policy, filter_tags, tags, message", [
    ({"semver": {"range": ">>1"}}, None, ["1.0.0"], "improper constraint: >>1"),
    ({"semver": {"range": "1.0.x"}}, None, ["1.2.0"], "unable to determine latest version from provided list"),
    ({"semver": {"range": "1.0.x"}}, None, [], "version list argument cannot be empty"),
    ({"numerical": {}}, None, ["1", "one"], "failed to parse invalid numeric value 'one'"),
    ({"alphabetical": {"order": "sideways"}}, None, ["a"],
     "invalid order argument provided: 'SIDEWAYS', must be one of: ASC, DESC"),
    ({}, None, ["a"], "given ImagePolicyChoice object is invalid"),
    ({"alphabetical": {}}, {"pattern": "(?P<x>a)(?P=x)"}, ["aa"], "invalid regular expression pattern '(?P<x>a)(?P=x)'"),
    ({"alphabetical": {}}, {"pattern": "^v"}, ["1.0"], "version list argument cannot be empty"),
])
def test_bad_input_is_one_message(policy, filter_tags, tags, message):
    with pytest.raises(PolicyError) as info:
        Policy(policy, filter_tags).latest(tags)
    assert str(info.value).startswith(message)


def test_go_float_and_expand_semantics():
    assert [go_parse_float(s) for s in ("1", "-1.5e3", "0x1p-2", "inf")] == [1.0, -1500.0, 0.25, float("inf")]
    assert go_parse_float("NaN") != go_parse_float("NaN")  # a NaN, as Go parses it
    assert [go_parse_float(s) for s in ("", " 1", "1_000", "one", "1.2.3")] == [None] * 5
    match = compile_go(r"(?P<major>\d+)\.(\d+)").search("v1.22-x")
    assert go_expand("${major}-$2-$$-$3-$1x-${nope}", match) == "1-22-$---"
