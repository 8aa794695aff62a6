"""Helpers for the kustomize build and kustomize-controller tests: source trees written from dicts, and SOPS keys made at test time
with the real age-keygen and gpg (no private key is ever committed)."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from controllers.localcluster.tools import ensure


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: content}`` below ``root`` (content dedented); return ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def configmap(name: str, **data: str) -> str:
    lines = "".join(f"  {k}: {v}\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{lines}"


@pytest.fixture(scope="session")
def kustomize_bin() -> Path:
    return ensure("kustomize")


@pytest.fixture(scope="session")
def sops_bin() -> Path:
    return ensure("sops")


class AgeKey:
    """An age identity and its recipient."""

    def __init__(self, identity: str, recipient: str):
        self.identity, self.recipient = identity, recipient

    def secret_data(self, key: str = "identity.agekey") -> dict[str, str]:
        return {key: base64.b64encode(self.identity.encode()).decode()}


def new_age_key() -> AgeKey:
    out = subprocess.run([str(ensure("age-keygen"))], capture_output=True, text=True, check=True).stdout
    identity = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run([str(ensure("age-keygen")), "-y"], input=identity + "\n", capture_output=True,
                               text=True, check=True).stdout.strip()
    return AgeKey(identity, recipient)


@pytest.fixture(scope="session")
def age_key() -> AgeKey:
    return new_age_key()


def sops_encrypt(path: Path, *, age: str | None = None, pgp: str | None = None,
                 encrypted_regex: str | None = "^(data|stringData)$", input_type: str | None = None,
                 env: dict | None = None) -> None:
    """Encrypt ``path`` in place with the real sops, for an age recipient or a PGP fingerprint."""
    command = [str(ensure("sops")), "encrypt", "--in-place"]
    if age:
        command += ["--age", age]
    if pgp:
        command += ["--pgp", pgp]
    if encrypted_regex and path.suffix in (".yaml", ".yml", ".json"):
        command += ["--encrypted-regex", encrypted_regex]
    if input_type:
        command += ["--input-type", input_type, "--output-type", input_type]
    run_env = {"PATH": os.environ["PATH"], "HOME": str(path.parent), "SOPS_DISABLE_VERSION_CHECK": "1", **(env or {})}
    subprocess.run(command + [str(path)], check=True, capture_output=True, env=run_env, cwd=path.parent)


class PGPKey:
    """A passphrase-less PGP key in its own GnuPG home."""

    def __init__(self, home: Path, fingerprint: str):
        self.home, self.fingerprint = home, fingerprint

    def armored_secret_key(self) -> bytes:
        return subprocess.run(["gpg", "--batch", "--homedir", str(self.home), "--armor", "--export-secret-keys",
                               self.fingerprint], capture_output=True, check=True).stdout


@pytest.fixture(scope="session")
def pgp_key(tmp_path_factory):
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (make system-deps)")
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))  # short: gpg-agent's socket path
    home.chmod(0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--quick-gen-key",
                    "fluxpy test <test@fluxpy.invalid>", "rsa2048", "encrypt,sign", "never"],
                   check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                             check=True, capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    yield PGPKey(home, fingerprint)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)
