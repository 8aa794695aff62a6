"""SOPS decryption with the real sops, age and gpg: fixtures are encrypted at test time, keys live in a
Secret in the real apiserver."""
from __future__ import annotations

import base64
import json

import pytest
import yaml

from controllers.api.builtin import SECRET
from controllers.lib.kustomize.build import build
from controllers.lib.kustomize.errors import BuildError, EncryptedSecretError

from ...conftest import new_age_key, sops_encrypt, write_tree

SECRET_MANIFEST = """
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: hunter2
data:
  user: YWRtaW4=
"""


def key_secret(kube, namespace: str, name: str, data: dict[str, str]) -> None:
    kube.create(SECRET, {"metadata": {"name": name}, "data": data}, namespace)


def decryption(name: str) -> dict:
    return {"decryption": {"provider": "sops", "secretRef": {"name": name}}}


def test_age_encrypted_secret_manifest(tmp_path, kube, namespace, age_key):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST, "kustomization.yaml": "resources: [secret.yaml]\n"})
    sops_encrypt(tmp_path / "secret.yaml", age=age_key.recipient)
    assert "hunter2" not in (tmp_path / "secret.yaml").read_text()
    key_secret(kube, namespace, "sops-age", age_key.secret_data())
    # kustomize changes the encrypted object (namespace, labels): the MAC is not checked, as in Flux
    spec = {**decryption("sops-age"), "targetNamespace": "prod", "commonMetadata": {"labels": {"a": "b"}}}
    (secret,) = build(tmp_path, spec, name="app", namespace=namespace, kube=kube).objects
    assert "sops" not in secret
    assert secret["stringData"] == {"password": "hunter2"}
    assert secret["data"] == {"user": "YWRtaW4="}
    assert secret["metadata"]["namespace"] == "prod"


def test_generator_sources_and_patches_are_decrypted_before_the_build(tmp_path, kube, namespace, age_key):
    write_tree(tmp_path, {
        "kustomization.yaml": """
            resources: [base]
            secretGenerator:
            - name: app
              envs: [app.env]
              files: [config.yaml, token=token.bin]
            patches:
            - path: patch.yaml
            """,
        "app.env": "DB_PASSWORD=hunter2\n",
        "config.yaml": "listen: 8080\npassword: hunter3\n",
        "token.bin": "opaque-token",
        "patch.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: base\nstringData:\n  extra: patched\n",
        "base/kustomization.yaml": "secretGenerator:\n- name: base\n  envs: [base.env]\n",
        "base/base.env": "NESTED=deep\n",
    })
    for name in ("app.env", "config.yaml", "token.bin", "patch.yaml", "base/base.env"):
        sops_encrypt(tmp_path / name, age=age_key.recipient,
                     encrypted_regex="^(stringData)$" if name == "patch.yaml" else None)
    key_secret(kube, namespace, "sops-age", age_key.secret_data())
    result = build(tmp_path, decryption("sops-age"), name="app", namespace=namespace, kube=kube)
    secrets = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in result.objects}
    data = {k: base64.b64decode(v).decode() for k, v in secrets["app"]["data"].items()}
    assert data["DB_PASSWORD"] == "hunter2" and data["token"] == "opaque-token"
    assert yaml.safe_load(data["config.yaml"]) == {"listen": 8080, "password": "hunter3"}
    assert base64.b64decode(secrets["base"]["data"]["NESTED"]) == b"deep"
    assert secrets["base"]["stringData"] == {"extra": "patched"}


def test_encrypted_secret_data_values(tmp_path, kube, namespace, age_key):
    write_tree(tmp_path, {"settings.json": json.dumps({"password": "hunter2"})})
    sops_encrypt(tmp_path / "settings.json", age=age_key.recipient, encrypted_regex=None)
    encrypted = base64.b64encode((tmp_path / "settings.json").read_bytes()).decode()
    write_tree(tmp_path, {"secret.yaml": f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
                                         f"data:\n  settings.json: {encrypted}\n  plain: YQ==\n"})
    (tmp_path / "settings.json").unlink()
    key_secret(kube, namespace, "keys", age_key.secret_data("a.agekey"))
    (secret,) = build(tmp_path, decryption("keys"), name="app", namespace=namespace, kube=kube).objects
    assert json.loads(base64.b64decode(secret["data"]["settings.json"])) == {"password": "hunter2"}
    assert secret["data"]["plain"] == "YQ=="


def test_pgp_key(tmp_path, kube, namespace, pgp_key):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST})
    sops_encrypt(tmp_path / "secret.yaml", pgp=pgp_key.fingerprint, env={"GNUPGHOME": str(pgp_key.home)})
    key_secret(kube, namespace, "sops-gpg",
               {"private.asc": base64.b64encode(pgp_key.armored_secret_key()).decode()})
    (secret,) = build(tmp_path, decryption("sops-gpg"), name="app", namespace=namespace, kube=kube).objects
    assert secret["stringData"] == {"password": "hunter2"}


def test_wrong_key_fails_without_leaking(tmp_path, kube, namespace, age_key, monkeypatch):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST})
    sops_encrypt(tmp_path / "secret.yaml", age=age_key.recipient)
    key_secret(kube, namespace, "other", new_age_key().secret_data())
    monkeypatch.setenv("SOPS_AGE_KEY", age_key.identity)  # the host's keys are never used
    with pytest.raises(BuildError) as err:
        build(tmp_path, decryption("other"), name="app", namespace=namespace, kube=kube)
    message = err.value.message
    assert err.value.reason == "BuildFailed"
    assert message.startswith("decryption failed for 'Secret.v1.[noGrp]/db': failed to decrypt and format '/db' "
                              "Secret data: ")
    assert "hunter2" not in message and age_key.identity not in message


def test_wrong_key_for_a_generator_source_names_the_file(tmp_path, kube, namespace, age_key):
    write_tree(tmp_path, {"kustomization.yaml": "secretGenerator:\n- name: app\n  envs: [app.env]\n",
                          "app.env": "A=secret-value\n"})
    sops_encrypt(tmp_path / "app.env", age=age_key.recipient)
    key_secret(kube, namespace, "other", new_age_key().secret_data())
    with pytest.raises(BuildError, match="^error decrypting sources: failed to decrypt app.env: "):
        build(tmp_path, decryption("other"), name="app", namespace=namespace, kube=kube)


def test_missing_or_malformed_keys(tmp_path, kube, namespace):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST})
    with pytest.raises(BuildError, match='^secrets "absent" not found$'):
        build(tmp_path, decryption("absent"), name="app", namespace=namespace, kube=kube)
    key_secret(kube, namespace, "bad", {"bad.agekey": base64.b64encode(b"AGE-SECRET-KEY-nope").decode()})
    with pytest.raises(BuildError) as err:
        build(tmp_path, decryption("bad"), name="app", namespace=namespace, kube=kube)
    assert err.value.message.startswith(f"failed to import 'bad.agekey' data from sops decryption Secret "
                                        f"'{namespace}/bad': ")


def test_encrypted_secret_without_decryption_is_refused(tmp_path, age_key):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST})
    sops_encrypt(tmp_path / "secret.yaml", age=age_key.recipient)
    with pytest.raises(EncryptedSecretError) as err:
        build(tmp_path, {"targetNamespace": "apps"}, name="app", namespace="ns")
    assert err.value.reason == "ReconciliationFailed"
    assert err.value.message == ("Secret/apps/db is SOPS encrypted, configuring decryption is required for this "
                                 "secret to be reconciled")


def test_controller_wide_age_secret(tmp_path, kube, namespace, age_key):
    write_tree(tmp_path, {"secret.yaml": SECRET_MANIFEST})
    sops_encrypt(tmp_path / "secret.yaml", age=age_key.recipient)
    key_secret(kube, namespace, "global-age", age_key.secret_data())
    spec = {"decryption": {"provider": "sops"}}
    (secret,) = build(tmp_path, spec, name="app", namespace="elsewhere", kube=kube,
                      sops_age_secret=(namespace, "global-age")).objects
    assert secret["stringData"] == {"password": "hunter2"}
