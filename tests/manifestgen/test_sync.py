"""manifestgen.sync: the files bootstrap commits (gotk-sync.yaml, kustomization.yaml), the source Secret and
SSH keys — Flux's layout, header, object shapes and Secret keys.

Golden files in tests/manifestgen/golden/ (``make golden`` regenerates them on purpose).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from manifestgen.install import GEN_WARNING
from manifestgen.sync import (ECDSA_CURVES, KEY_ALGORITHMS, GitSecretOptions, SyncOptions, components_file,
                              generate, generate_git_secret, generate_keypair, generate_kustomization,
                              kustomization_resources, load_keypair, normalize_kustomization_path,
                              safe_relative_path)
from tests.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str, text: str) -> None:
    assert_golden(GOLDEN / name, text)


# --------------------------------------------------------------------------- paths

@pytest.mark.parametrize("value, expected", [
    ("", ""), (".", "./"), ("./", "./"), ("clusters/dev", "./clusters/dev"), ("./clusters/dev/", "./clusters/dev"),
    ("clusters//dev", "./clusters/dev"), ("clusters/x/../dev", "./clusters/dev"), ("  clusters/dev ", "./clusters/dev"),
])
def test_safe_relative_path(value, expected):
    assert safe_relative_path(value) == expected


@pytest.mark.parametrize("value", ["..", "../x", "clusters/../../x", "/etc/flux", "C:\\x", "\\\\server\\x"])
def test_paths_outside_the_repository_are_refused(value):
    with pytest.raises(ValueError, match="relative to the repository root|leads outside the repository"):
        safe_relative_path(value)


def test_kustomization_paths_compare_like_flux():
    assert normalize_kustomization_path("clusters/dev/") == "./clusters/dev"
    assert normalize_kustomization_path("./") == "./"
    assert normalize_kustomization_path("") == "./"


# --------------------------------------------------------------------------- gotk-sync.yaml

def test_sync_manifest_golden():
    manifest = generate(SyncOptions(url="ssh://git@github.com/acme/fleet", target_path="./clusters/my-cluster"))
    assert manifest.file.path == "clusters/my-cluster/flux-system/gotk-sync.yaml"
    golden("sync-default.yaml", manifest.file.content)


def test_sync_manifest_is_flux_shaped():
    manifest = generate(SyncOptions(url="https://example.com/fleet.git", name="gitops", namespace="gitops",
                                    branch="prod", secret="creds", interval=90, recurse_submodules=True))
    text = manifest.file.content
    assert text.startswith(GEN_WARNING + "\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\n")
    assert manifest.file.path == "gitops/gotk-sync.yaml"  # no --path: <namespace>/ at the root
    repo, ks = yaml.safe_load_all(text)
    assert [repo, ks] == manifest.objects
    assert repo["metadata"] == {"name": "gitops", "namespace": "gitops"}
    assert repo["spec"] == {"interval": "1m30s", "url": "https://example.com/fleet.git", "ref": {"branch": "prod"},
                            "secretRef": {"name": "creds"}, "recurseSubmodules": True}
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["spec"] == {"interval": "10m0s", "path": "./", "prune": True,
                          "sourceRef": {"kind": "GitRepository", "name": "gitops"}}


@pytest.mark.parametrize("options, message", [
    (dict(url="git@github.com:acme/fleet.git"), "invalid repository URL"),
    (dict(url="ssh://h/x", namespace="Flux_System"), "invalid namespace"),
    (dict(url="ssh://h/x", branch=""), "a branch, tag, semver range or commit is required"),
    (dict(url="ssh://h/x", target_path="clusters/dev"), "expected the form ./dir/subdir"),
    (dict(url="ssh://h/x", interval=0), "the interval must be positive"),
])
def test_sync_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        generate(SyncOptions(**options))


def test_components_file_lives_next_to_the_sync_file():
    f = components_file("---\n# header\n", "./clusters/dev", "flux-system")
    assert f.path == "clusters/dev/flux-system/gotk-components.yaml" and f.content == "---\n# header\n"


# --------------------------------------------------------------------------- kustomization.yaml

def test_kustomization_lists_the_manifests_of_the_directory():
    entries = [("gotk-sync.yaml", "apiVersion: v1\nkind: X\n"), ("gotk-components.yaml", "---\napiVersion: v1\n"
                                                                                         "kind: Namespace\n"),
               ("notes.txt", "not yaml: [\n"), ("values.yaml", "replicas: 2\n"), ("overlay", None),
               ("sub/extra.yaml", "apiVersion: v1\nkind: ConfigMap\n")]
    assert kustomization_resources(entries) == ["gotk-components.yaml", "gotk-sync.yaml", "overlay",
                                                "sub/extra.yaml"]
    f = generate_kustomization("clusters/dev/flux-system", ["gotk-components.yaml", "gotk-sync.yaml"])
    assert f.path == "clusters/dev/flux-system/kustomization.yaml"
    golden("sync-kustomization.yaml", f.content)
    assert yaml.safe_load(generate_kustomization("", []).content)["resources"] == []


# --------------------------------------------------------------------------- keys and the Secret

@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS)
def test_generated_keys_are_usable_by_openssh(algorithm, tmp_path):
    pair = generate_keypair(algorithm, rsa_bits=2048)
    path = tmp_path / "identity"
    path.write_bytes(pair.private_key)
    path.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, timeout=30, check=True)
    assert derived.stdout.split()[:2] == pair.public_key.split()[:2]
    assert pair.public_key.endswith(b"\n")


def test_default_key_is_ecdsa_p384():
    pair = generate_keypair()
    assert pair.public_key_text.startswith("ecdsa-sha2-nistp384 ")
    assert pair.private_key.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Flux
    for curve, name in zip(ECDSA_CURVES, ("nistp256", "nistp384", "nistp521")):
        assert generate_keypair("ecdsa", ecdsa_curve=curve).public_key_text.startswith(f"ecdsa-sha2-{name} ")


@pytest.mark.parametrize("kwargs, message", [
    (dict(algorithm="dsa"), "unsupported SSH key algorithm 'dsa'"),
    (dict(algorithm="ecdsa", ecdsa_curve="p192"), "unsupported ECDSA curve 'p192'"),
    (dict(algorithm="rsa", rsa_bits=1000), "invalid RSA key size 1000"),
])
def test_bad_key_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_keypair(**kwargs)


def test_load_keypair_from_ssh_keygen_keys(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "hunter22", "-f", str(tmp_path / "k")], check=True,
                   timeout=30)
    private = (tmp_path / "k").read_bytes()
    pair = load_keypair(private, "hunter22")
    assert pair.private_key == private  # kept as given (encrypted, with its passphrase in the Secret)
    assert pair.public_key.split()[:2] == (tmp_path / "k.pub").read_bytes().split()[:2]
    with pytest.raises(ValueError, match="--password"):
        load_keypair(private)
    with pytest.raises(ValueError, match="not a private key in PEM or OpenSSH format"):
        load_keypair(b"garbage")


def test_pkcs8_ed25519_is_rewritten_for_openssh():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    pair = load_keypair(pkcs8)
    assert pair.private_key.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert serialization.load_ssh_private_key(pair.private_key, None).public_key() == key.public_key()


def test_ssh_secret_has_flux_keys():
    pair = generate_keypair()
    secret = generate_git_secret(GitSecretOptions(name="flux-system", namespace="gitops", keypair=pair,
                                                  known_hosts=b"[git.example.com]:2222 ssh-ed25519 AAAA\n",
                                                  password="pp"))
    assert secret["metadata"] == {"name": "flux-system", "namespace": "gitops"}
    assert secret["stringData"] == {"identity": pair.private_key.decode(), "identity.pub": pair.public_key.decode(),
                                    "known_hosts": "[git.example.com]:2222 ssh-ed25519 AAAA\n", "password": "pp"}


def test_token_secrets_have_flux_keys():
    basic = generate_git_secret(GitSecretOptions(username="git", password="tok", ca_crt=b"PEM"))
    assert basic["stringData"] == {"username": "git", "password": "tok", "ca.crt": "PEM"}
    bearer = generate_git_secret(GitSecretOptions(bearer_token="tok"))
    assert bearer["stringData"] == {"bearerToken": "tok"}
    assert generate_git_secret(GitSecretOptions(username="only-a-user"))["stringData"] == {}
    with pytest.raises(ValueError, match="known_hosts"):
        generate_git_secret(GitSecretOptions(keypair=generate_keypair()))
