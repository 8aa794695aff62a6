"""The image-reflector-controller (ImageRepository and ImagePolicy reconcilers) against a real docker-registry
on loopback (anonymous, basic and token auth, TLS, a CONNECT proxy) and the real control plane.

Covers: scans with ``Link`` pagination, Flux's checksum and Ready messages, the exclusion list, scanning only
when due, the tag database outside etcd, every policy kind over the scanned tags, digest reflection,
observedPreviousRef, re-selection when the repository's tags change, accessFrom / cross-namespace refs, and
bad input (unparseable image, bad or missing credentials, unreachable registry, invalid range or regex,
numerical over non-numeric tags, unsupported provider) that never shows a secret.
"""
from __future__ import annotations

import zlib

import pytest

from controllers.api.builtin import NAMESPACE
from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY
from controllers.image import tags as tagdb
from controllers.image.reflector import ImagePolicyReconciler, ImageRepositoryReconciler, Options, parse_image
from controllers.lib.oci import registry as oci_registry
from controllers.runtime.kube import Invalid
from servers.kubeconfigs import ConnectProxy
from servers.net import refused_endpoint
from servers.objects import apply_secret, apply_source
from servers.registry import registry, registry_htpasswd, registry_tls, registry_token  # noqa: F401
from servers.waiting import Waits, ready_with

TIMEOUT = 30.0
REPOS, POLICIES = Waits(IMAGE_REPOSITORY, TIMEOUT), Waits(IMAGE_POLICY, TIMEOUT)


@pytest.fixture
def database(tmp_path):
    db = tagdb.TagDatabase(tmp_path / "tags.sqlite")
    yield db
    db.close()


@pytest.fixture
def reflector(start_controller, database, namespace, flux_crds):
    start_controller(ImageRepositoryReconciler(database), namespace)
    start_controller(ImagePolicyReconciler(database), namespace)
    return database


def image_of(server, repository: str) -> str:
    return f"{server.host}/{repository}"


def push_tags(server, tags: list[str], repository: str = "") -> str:
    """A fresh repository (unless given) with ``tags`` (the first pushed, the others re-tagged)."""
    repository = repository or server.new_repository("img")
    server.push(repository, tags[0], {"app.yaml": f"tag: {tags[0]}\n"})
    if tags[1:]:
        server.tag(repository, tags[0], tags[1:])
    return repository


def apply_repo(kube, namespace, name, image, **spec) -> dict:
    return apply_source(kube, IMAGE_REPOSITORY, namespace, name, {"image": image, "interval": "10m", **spec})


def apply_policy(kube, namespace, name, repo, policy, **spec) -> dict:
    return apply_source(kube, IMAGE_POLICY, namespace, name,
                        {"imageRepositoryRef": {"name": repo}, "policy": policy, **spec})


def pull_secret(kube, namespace, name, server, password: str = "") -> None:
    apply_secret(kube, namespace, name, {".dockerconfigjson": oci_registry.docker_config_json(
        server.host, server.username, password or server.password)}, "kubernetes.io/dockerconfigjson")


def condition(obj, type_="Ready"):
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


# ------------------------------------------------------------------------------------------------ units


@pytest.mark.parametrize("image, canonical", [
    ("alpine", "index.docker.io/library/alpine"),
    ("docker.io/fluxcd/flux", "index.docker.io/fluxcd/flux"),
    ("ghcr.io/org/app", "ghcr.io/org/app"),
    ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app"),
])
def test_canonical_image_names(image, canonical):
    assert parse_image(image).name == canonical


@pytest.mark.parametrize("image, message", [
    ("https://ghcr.io/org/app", "image 'https://ghcr.io/org/app' should not include URL scheme; remove 'https://'"),
    ("ghcr.io/org/app:v1", "image 'ghcr.io/org/app:v1' should not include a tag; remove ':v1'"),
    ("127.0.0.1:5000/app:1.0", "image '127.0.0.1:5000/app:1.0' should not include a tag; remove ':1.0'"),
])
def test_image_names_with_scheme_or_tag_are_refused(image, message):
    with pytest.raises(ValueError) as info:
        parse_image(image)
    assert str(info.value) == message


def test_database_checksum_is_fluxs_adler32_of_the_go_json(database):
    tags = ["v2", "v1", "a<b"]
    revision = database.set_tags("ghcr.io/org/app", tags)
    assert revision == str(zlib.adler32(b'["v2","v1","a\\u003cb"]'))
    assert database.tags("ghcr.io/org/app") == tags and database.tags("ghcr.io/other") == []


# ---------------------------------------------------------------------------------------- ImageRepository


def test_scan_paginates_excludes_and_stores_tags_outside_etcd(kube, namespace, registry, reflector):
    tags = [f"1.0.{i}" for i in range(1200)] + ["1.0.5.sig", "latest"]
    repository = push_tags(registry, tags)
    apply_repo(kube, namespace, "app", image_of(registry, repository))
    obj = REPOS.wait(kube, namespace, "app", ready_with("True"), "ImageRepository Ready")

    kept = sorted((t for t in tags if not t.endswith(".sig")), reverse=True)  # 1201 tags over two pages
    result = obj["status"]["lastScanResult"]
    assert result["tagCount"] == 1201 and result["revision"] == tagdb.checksum(kept)
    assert result["latestTags"] == kept[:10] and result["scanTime"].endswith("Z")
    assert obj["status"]["canonicalImageName"] == image_of(registry, repository)
    assert obj["status"]["observedExclusionList"] == [r"^.*\.sig$"]
    assert condition(obj)["message"] == f"successful scan: found 1201 tags with checksum {result['revision']}"
    assert reflector.tags(image_of(registry, repository)) == kept
    assert "1.0.5.sig" not in str(obj)


def test_scan_only_when_due_and_on_request(kube, namespace, registry, reflector):
    repository = push_tags(registry, ["1.0.0"])
    apply_repo(kube, namespace, "app", image_of(registry, repository), exclusionList=["^v"])
    first = REPOS.wait(kube, namespace, "app", ready_with("True"), "ImageRepository Ready")
    registry.tag(repository, "1.0.0", ["1.1.0", "v9"])

    # a spec change that is not the image or the exclusion list: no new scan
    apply_repo(kube, namespace, "app", image_of(registry, repository), exclusionList=["^v"], timeout="30s")
    same = REPOS.wait(kube, namespace, "app", lambda o: o["status"].get("observedGeneration") == 2, "gen 2")
    assert same["status"]["lastScanResult"] == first["status"]["lastScanResult"]

    # a reconcile request scans
    after = REPOS.reconcile_now(kube, namespace, "app")
    assert after["status"]["lastScanResult"]["tagCount"] == 2
    assert after["status"]["lastScanResult"]["latestTags"] == ["1.1.0", "1.0.0"]

    # a changed exclusion list scans
    apply_repo(kube, namespace, "app", image_of(registry, repository), exclusionList=["^1\\.0"])
    changed = REPOS.wait(kube, namespace, "app", lambda o: (o["status"].get("lastScanResult") or {}).get(
        "latestTags") == ["v9", "1.1.0"], "rescanned with the new exclusion list")
    assert changed["status"]["observedExclusionList"] == ["^1\\.0"]


def test_basic_and_token_auth_with_pull_secrets(kube, namespace, registry_htpasswd, registry_token, reflector):
    basic = push_tags(registry_htpasswd, ["1.0.0", "2.0.0"])
    pull_secret(kube, namespace, "basic-creds", registry_htpasswd)
    apply_repo(kube, namespace, "basic", image_of(registry_htpasswd, basic), secretRef={"name": "basic-creds"})

    token = push_tags(registry_token, ["3.0.0"])
    pull_secret(kube, namespace, "token-creds", registry_token)
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller", "namespace": namespace},
                "imagePullSecrets": [{"name": "token-creds"}]}, field_manager="test")
    apply_repo(kube, namespace, "token", image_of(registry_token, token), serviceAccountName="puller")

    assert REPOS.wait(kube, namespace, "basic", ready_with("True"), "basic")["status"]["lastScanResult"][
        "tagCount"] == 2
    assert REPOS.wait(kube, namespace, "token", ready_with("True"), "token")["status"]["lastScanResult"][
        "latestTags"] == ["3.0.0"]


def test_wrong_or_missing_credentials_fail_without_leaking(kube, namespace, registry_htpasswd, reflector):
    repository = push_tags(registry_htpasswd, ["1.0.0"])
    pull_secret(kube, namespace, "wrong", registry_htpasswd, password="not-the-password-4242")
    apply_repo(kube, namespace, "wrong", image_of(registry_htpasswd, repository), secretRef={"name": "wrong"})
    apply_repo(kube, namespace, "anon", image_of(registry_htpasswd, repository))
    apply_repo(kube, namespace, "missing", image_of(registry_htpasswd, repository), secretRef={"name": "nope"})

    wrong = REPOS.wait(kube, namespace, "wrong", ready_with("False", "ReadOperationFailed"), "wrong creds")
    assert condition(wrong)["message"].startswith("scan failed: ")
    assert "UNAUTHORIZED" in condition(wrong)["message"] or "401" in condition(wrong)["message"]
    assert "not-the-password-4242" not in str(wrong)
    REPOS.wait(kube, namespace, "anon", ready_with("False", "ReadOperationFailed"), "anonymous")
    missing = REPOS.wait(kube, namespace, "missing", ready_with("False", "AuthenticationFailed"), "missing secret")
    assert condition(missing)["message"].startswith(
        f"failed to configure authentication options: failed to get secret '{namespace}/nope'")


def test_tls_with_cert_secret_and_proxy(kube, namespace, registry_tls, registry, reflector):
    repository = push_tags(registry_tls, ["1.0.0"])
    apply_repo(kube, namespace, "untrusted", image_of(registry_tls, repository))
    apply_secret(kube, namespace, "ca", {"ca.crt": registry_tls.ca_pem.decode()})
    apply_repo(kube, namespace, "trusted", image_of(registry_tls, repository), certSecretRef={"name": "ca"})
    untrusted = REPOS.wait(kube, namespace, "untrusted", ready_with("False", "ReadOperationFailed"), "untrusted")
    assert "certificate" in condition(untrusted)["message"]
    REPOS.wait(kube, namespace, "trusted", ready_with("True"), "trusted CA")

    proxy = ConnectProxy()
    try:
        plain = push_tags(registry, ["0.1.0"])
        apply_secret(kube, namespace, "proxy", {"address": proxy.url})
        apply_repo(kube, namespace, "proxied", image_of(registry, plain), proxySecretRef={"name": "proxy"})
        REPOS.wait(kube, namespace, "proxied", ready_with("True"), "scanned through the proxy")
        assert registry.host in proxy.tunnels
    finally:
        proxy.close()


def test_bad_image_unreachable_registry_and_provider(kube, namespace, reflector):
    apply_repo(kube, namespace, "tagged", "ghcr.io/org/app:v1")
    apply_repo(kube, namespace, "down", f"{refused_endpoint()}/app", timeout="5s")
    apply_repo(kube, namespace, "aws", "123.dkr.ecr.us-east-1.amazonaws.com/app", provider="aws")
    tagged = REPOS.wait(kube, namespace, "tagged", ready_with("False", "ImageURLInvalid"), "tagged image")
    assert condition(tagged, "Stalled")["message"] == "image 'ghcr.io/org/app:v1' should not include a tag; remove ':v1'"
    down = REPOS.wait(kube, namespace, "down", ready_with("False", "ReadOperationFailed"), "unreachable")
    assert "connection refused" in condition(down)["message"]
    aws = REPOS.wait(kube, namespace, "aws", ready_with("False", "AuthenticationFailed"), "aws provider")
    assert "not supported by fluxpy" in condition(aws, "Stalled")["message"]


# -------------------------------------------------------------------------------------------- ImagePolicy


POLICY_CASES = [
    ({"semver": {"range": ">=1.0.0 <2.0.0"}}, None, "1.10.0"),
    ({"semver": {"range": "^2.x-0"}}, None, "2.1.0-rc.1"),
    ({"alphabetical": {}}, None, "v2.0.0"),
    ({"alphabetical": {"order": "desc"}}, None, "1.0.0"),
    ({"numerical": {}}, {"pattern": r"^main-[a-f0-9]+-(?P<ts>\d+)$", "extract": "$ts"}, "main-bbb-1700000300"),
    ({"numerical": {"order": "desc"}}, {"pattern": r"^main-[a-f0-9]+-(\d+)$", "extract": "$1"}, "main-ccc-1700000100"),
    ({"alphabetical": {}}, {"pattern": "^rc-(.*)$", "extract": "$1"}, "rc-b"),
]
POLICY_TAGS = ["1.0.0", "1.2.3", "1.10.0", "2.0.0", "2.1.0-rc.1", "v2.0.0", "main-aaa-1700000200",
               "main-bbb-1700000300", "main-ccc-1700000100", "rc-a", "rc-b"]


def test_every_policy_kind_over_scanned_tags(kube, namespace, registry, reflector):
    repository = push_tags(registry, POLICY_TAGS)
    image = image_of(registry, repository)
    apply_repo(kube, namespace, "app", image)
    for i, (policy, filter_tags, _) in enumerate(POLICY_CASES):
        apply_policy(kube, namespace, f"p{i}", "app", policy, **({"filterTags": filter_tags} if filter_tags else {}))
    for i, (_, _, expected) in enumerate(POLICY_CASES):
        obj = POLICIES.wait(kube, namespace, f"p{i}", ready_with("True"), f"policy {i}")
        assert obj["status"]["latestRef"] == {"name": image, "tag": expected}, POLICY_CASES[i]
        assert condition(obj)["message"] == f"Latest image tag for {image} resolved to {expected}"


def test_new_tags_move_the_policy_and_record_the_previous_ref(kube, namespace, registry, reflector):
    repository = push_tags(registry, ["1.0.0"])
    image = image_of(registry, repository)
    apply_repo(kube, namespace, "app", image)
    apply_policy(kube, namespace, "latest", "app", {"semver": {"range": ">=1.0.0"}},
                 digestReflectionPolicy="IfNotPresent")
    first = POLICIES.wait(kube, namespace, "latest", ready_with("True"), "first selection")
    old_digest = first["status"]["latestRef"]["digest"]
    assert old_digest.startswith("sha256:") and "observedPreviousRef" not in first["status"]

    new_digest = registry.push(repository, "1.1.0", {"app.yaml": "tag: 1.1.0\n"})
    REPOS.reconcile_now(kube, namespace, "app")  # the new scan revision re-runs the policy by itself
    moved = POLICIES.wait(kube, namespace, "latest", lambda o: (o["status"].get("latestRef") or {}).get(
        "tag") == "1.1.0" and o["status"]["conditions"][0]["status"] == "True", "moved to 1.1.0")
    assert moved["status"]["latestRef"] == {"name": image, "tag": "1.1.0", "digest": new_digest}
    assert moved["status"]["observedPreviousRef"] == {"name": image, "tag": "1.0.0", "digest": old_digest}
    assert condition(moved)["message"] == (f"Latest image tag for {image} resolved to 1.1.0 with digest {new_digest} "
                                           f"(previously {image}:1.0.0@{old_digest})")


def test_digest_reflection_always_follows_a_moved_tag(kube, namespace, registry, reflector):
    repository = push_tags(registry, ["stable"])
    apply_repo(kube, namespace, "app", image_of(registry, repository))
    apply_policy(kube, namespace, "always", "app", {"alphabetical": {}}, digestReflectionPolicy="Always",
                 interval="1h")
    with pytest.raises(Invalid) as info:  # the CRD's validation refuses Always without an interval
        apply_policy(kube, namespace, "no-interval", "app", {"alphabetical": {}}, digestReflectionPolicy="Always")
    assert "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'" in str(info.value)
    first = POLICIES.wait(kube, namespace, "always", ready_with("True"), "digest reflected")
    moved = registry.push(repository, "stable", {"app.yaml": "moved\n"})
    assert moved != first["status"]["latestRef"]["digest"]
    after = POLICIES.reconcile_now(kube, namespace, "always")
    assert after["status"]["latestRef"]["digest"] == moved


def test_invalid_policies_and_missing_tags(kube, namespace, registry, reflector):
    repository = push_tags(registry, ["1.0.0", "latest"])
    apply_repo(kube, namespace, "app", image_of(registry, repository))
    apply_policy(kube, namespace, "range", "app", {"semver": {"range": "not a range"}})
    apply_policy(kube, namespace, "regex", "app", {"alphabetical": {}}, filterTags={"pattern": "(unclosed"})
    apply_policy(kube, namespace, "numbers", "app", {"numerical": {}})
    apply_policy(kube, namespace, "nothing", "app", {"semver": {"range": ">=5.0.0"}})
    apply_policy(kube, namespace, "orphan", "absent", {"semver": {"range": ">=1.0.0"}})

    rng = POLICIES.wait(kube, namespace, "range", ready_with("False", "InvalidPolicy"), "bad range")
    assert condition(rng, "Stalled")["message"].startswith("invalid policy: improper constraint: not a range")
    regex = POLICIES.wait(kube, namespace, "regex", ready_with("False", "InvalidPolicy"), "bad regex")
    assert condition(regex)["message"].startswith("failed to filter tags: invalid regular expression pattern")
    numbers = POLICIES.wait(kube, namespace, "numbers", ready_with("False", "Failure"), "non-numeric tags")
    assert condition(numbers)["message"] == "failed to parse invalid numeric value 'latest'"
    nothing = POLICIES.wait(kube, namespace, "nothing", ready_with("False", "Failure"), "no match")
    assert condition(nothing)["message"] == "unable to determine latest version from provided list"
    orphan = POLICIES.wait(kube, namespace, "orphan", ready_with("False", "DependencyNotReady"), "no repository")
    assert condition(orphan)["message"].startswith(
        "failed to get the referred ImageRepository: referenced ImageRepository does not exist")

    # the repository appears: the policy resolves without being touched
    apply_repo(kube, namespace, "absent", image_of(registry, repository))
    POLICIES.wait(kube, namespace, "orphan", ready_with("True"), "resolved once the repository scanned")


def test_cross_namespace_access_from(kube, namespace, registry, start_controller, database, flux_crds):
    other = f"{namespace}-repos"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}, field_manager="test")
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
        "team": "apps"}}}, field_manager="test")
    try:
        start_controller(ImageRepositoryReconciler(database), other)
        start_controller(ImagePolicyReconciler(database), namespace)
        repository = push_tags(registry, ["1.0.0"])
        apply_repo(kube, other, "closed", image_of(registry, repository))
        apply_repo(kube, other, "open", image_of(registry, repository),
                   accessFrom={"namespaceSelectors": [{"matchLabels": {"team": "apps"}}]})
        REPOS.wait(kube, other, "open", ready_with("True"), "scanned")
        for name in ("closed", "open"):
            apply_source(kube, IMAGE_POLICY, namespace, name, {
                "imageRepositoryRef": {"name": name, "namespace": other}, "policy": {"alphabetical": {}}})
        closed = POLICIES.wait(kube, namespace, "closed", ready_with("False", "AccessDenied"), "denied")
        assert condition(closed)["message"] == (f"failed to get the referred ImageRepository: access denied: "
                                                f"'{other}/closed' can't be accessed due to missing ACL labels on "
                                                "'accessFrom'")
        POLICIES.wait(kube, namespace, "open", ready_with("True"), "allowed by accessFrom")
    finally:
        kube.delete(NAMESPACE, other)


def test_no_cross_namespace_refs_flag(kube, namespace, start_controller, database, flux_crds):
    start_controller(ImagePolicyReconciler(database, Options(no_cross_namespace_refs=True)), namespace)
    apply_source(kube, IMAGE_POLICY, namespace, "p", {"imageRepositoryRef": {"name": "r", "namespace": "elsewhere"},
                                                      "policy": {"alphabetical": {}}})
    obj = POLICIES.wait(kube, namespace, "p", ready_with("False", "AccessDenied"), "blocked")
    assert condition(obj)["message"] == ("failed to get the referred ImageRepository: cannot access "
                                         "'ImageRepository/elsewhere/r', cross-namespace references have been blocked")
