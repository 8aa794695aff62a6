"""SOPS decryption for a Kustomization with ``spec.decryption.provider: sops``, with the real sops binary.

As Flux's kustomize-controller:

- keys come from the Secret ``spec.decryption.secretRef`` in the Kustomization's namespace: every
  ``*.agekey`` entry holds age identities, every ``*.asc`` entry an armored PGP private key (imported into
  a throw-away GnuPG home). Without a secretRef, the controller's ``--sops-age-secret`` may give age keys.
  Cloud KMS and Vault credentials (``sops.aws-kms``, ``sops.vault-token``, ...) are not supported.
- before the build, :meth:`Decryptor.decrypt_sources` decrypts in place the files kustomize generators and
  patches read — ``secretGenerator`` ``files``/``envs`` and ``patches[].path`` — in the kustomization and
  the local directories its resources and components name (files without the format's SOPS marker are
  left alone, at most 5 MiB, no symlinks);
- after the build, :meth:`Decryptor.decrypt_object` decrypts an object that is a whole SOPS document (it has
  ``sops.mac``), or the SOPS-encrypted values of a Secret's ``data`` (format from the SOPS marker, output
  format from the key's extension);
- the MAC is not checked (kustomize changes encrypted objects, e.g. labels and namespace, as Flux allows);
- :func:`is_encrypted_secret` tells a Secret that would be applied still encrypted.

sops runs with a private HOME and GNUPGHOME and only the imported keys (``SOPS_AGE_KEY``), never the host's.
Error messages never carry plaintext: sops' "Input string ... does not match" is redacted as Flux does.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from controllers.lib.kustomize.errors import BuildError
from controllers.lib.kustomize.tree import is_remote, kustomizations, relative, secure_join

PROVIDER = "sops"
AGE_KEY_EXT, PGP_KEY_EXT = ".agekey", ".asc"
MAX_ENCRYPTED_FILE_SIZE = 5 << 20
DEFAULT_TIMEOUT = 60.0

#: SOPS' marker in each output format (binary files are a JSON envelope at rest).
MARKERS = {
    "yaml": b"mac: ENC[",
    "json": b'"mac": "ENC[',
    "dotenv": b"sops_mac=ENC[",
    "ini": b"[sops]",
}
_AGE_IDENTITY = re.compile(r"^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$")
_UNENCRYPTED_VALUE = re.compile(r"Input string .*? does not match sops' data format", re.S)


class DecryptionError(BuildError):
    """A key cannot be imported, or sops cannot decrypt (wrong key, corrupt file)."""


def format_for_path(path: str) -> str:
    """The sops format of a file or Secret key, from its name (``.dockerconfigjson`` is JSON)."""
    if path.endswith(".dockerconfigjson"):
        return "json"
    ext = os.path.splitext(path)[1]
    return {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv", ".ini": "ini"}.get(ext, "binary")


def is_encrypted_object(obj: dict) -> bool:
    """Whether a built object is a whole SOPS document (a ``sops`` field with a ``mac``)."""
    sops = obj.get("sops")
    return isinstance(sops, dict) and bool(sops.get("mac"))


def is_encrypted_secret(obj: dict) -> bool:
    """Whether ``obj`` is a v1 Secret still carrying SOPS metadata."""
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and "sops" in obj


def _detect_format(data: bytes, key: str) -> str | None:
    """The sops format of an encrypted Secret value, or None when it carries no SOPS marker."""
    if MARKERS["dotenv"] in data:
        return "dotenv"
    if MARKERS["ini"] in data:
        return "ini"
    if MARKERS["json"] in data:
        try:
            envelope = json.loads(data)
        except ValueError:
            return "json"
        binary = isinstance(envelope, dict) and set(envelope) == {"data", "sops"} and isinstance(envelope["data"], str)
        return "binary" if binary else "json"
    if MARKERS["yaml"] in data:
        return "yaml"
    return None


class Decryptor:
    """Decryption for one build of one Kustomization; use as a context manager (it owns a temp directory).

    ``decryption`` is ``spec.decryption``; ``namespace`` the Kustomization's; ``root`` the extracted
    artifact, which decrypted source files never leave; ``sops_age_secret`` the controller-wide
    ``(namespace, name)`` of age keys used when ``decryption.secretRef`` is absent.
    """

    def __init__(self, kube, namespace: str, decryption: dict, root: str | os.PathLike, *,
                 sops_age_secret: tuple[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.kube, self.namespace, self.spec = kube, namespace, decryption or {}
        self.root, self.sops_age_secret, self.timeout = Path(os.path.realpath(root)), sops_age_secret, timeout
        self.age_identities: list[str] = []
        self._home = Path(tempfile.mkdtemp(prefix="fluxpy-sops-"))
        self._gnupg = self._home / "gnupg"
        self._gnupg.mkdir(mode=0o700)

    def __enter__(self) -> "Decryptor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the gpg-agent that PGP work started in the private GnuPG home, and delete the keys."""
        if shutil.which("gpgconf") and any(self._gnupg.iterdir()):
            subprocess.run(["gpgconf", "--homedir", str(self._gnupg), "--kill", "all"],
                           capture_output=True, timeout=10, check=False)
        shutil.rmtree(self._home, ignore_errors=True)

    # ------------------------------------------------------------------ keys

    def import_keys(self) -> None:
        """Import the age and PGP keys of the decryption Secret (or of ``--sops-age-secret``)."""
        from controllers.api.builtin import SECRET
        from controllers.runtime.kube import KubeError, NotFound

        if self.spec.get("provider") != PROVIDER or self.kube is None:
            return
        ref = self.spec.get("secretRef") or {}
        if not ref.get("name"):
            if self.sops_age_secret is None:
                return
            namespace, name = self.sops_age_secret
            label, only_age = f"{PROVIDER} SOPS age decryption Secret '{namespace}/{name}'", True
        else:
            namespace, name = self.namespace, ref["name"]
            label, only_age = f"{PROVIDER} decryption Secret '{namespace}/{name}'", False
        try:
            secret = self.kube.get(SECRET, name, namespace)
        except NotFound as exc:
            raise DecryptionError(exc.message) from None
        except KubeError as exc:
            raise DecryptionError(f"cannot get {label}: {exc.message}") from None
        for key, value in sorted((secret.get("data") or {}).items()):
            ext = os.path.splitext(key)[1]
            if ext not in (AGE_KEY_EXT, PGP_KEY_EXT) or (only_age and ext != AGE_KEY_EXT):
                continue
            data = base64.b64decode(value)
            try:
                if ext == AGE_KEY_EXT:
                    self.age_identities += _age_identities(data.decode(errors="replace"))
                else:
                    self._import_pgp(data)
            except ValueError as exc:
                raise DecryptionError(f"failed to import '{key}' data from {label}: {exc}") from None

    def _import_pgp(self, data: bytes) -> None:
        gpg = shutil.which("gpg")
        if gpg is None:
            raise ValueError("gpg is not installed")
        done = subprocess.run([gpg, "--batch", "--no-tty", "--quiet", "--homedir", str(self._gnupg), "--import"],
                              input=data, capture_output=True, timeout=self.timeout, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
            raise ValueError(lines[-1] if lines else f"gpg exited with {done.returncode}")

    # ------------------------------------------------------------------ sops

    def sops(self, data: bytes, input_format: str, output_format: str) -> bytes:
        """Decrypt ``data`` with sops (MAC not checked); ValueError with sops' message, values redacted."""
        from controllers.localcluster.tools import ensure

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home), "XDG_CONFIG_HOME": str(self._home), "GNUPGHOME": str(self._gnupg),
            "SOPS_AGE_KEY": "\n".join(self.age_identities), "SOPS_DISABLE_VERSION_CHECK": "1",
        }
        command = [str(ensure("sops")), "decrypt", "--ignore-mac", "--input-type", input_format,
                   "--output-type", output_format]
        try:
            done = subprocess.run(command, input=data, capture_output=True, env=env, cwd=self._home,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ValueError(f"sops timed out after {self.timeout:g}s") from None
        if done.returncode != 0:
            raise ValueError(_sops_message(done.stderr.decode(errors="replace"), self._home))
        return done.stdout

    # ------------------------------------------------------------------ sources (before the build)

    def decrypt_sources(self, directory: str | os.PathLike) -> None:
        """Decrypt in place the secretGenerator files/envs and patch files of the kustomization in
        ``directory`` and of the local kustomizations it includes. Raises DecryptionError."""
        done: set[Path] = set()
        try:
            for kdir, _kfile, content in kustomizations(self.root, directory, follow=("resources", "components")):
                for ref, fmt in _source_references(content):
                    path = secure_join(self.root, os.path.join(relative(self.root, kdir), ref)
                                       if not ref.startswith("/") else ref)
                    if path in done:
                        continue
                    self._decrypt_file(path, fmt)
                    done.add(path)
        except ValueError as exc:
            raise DecryptionError(str(exc)) from None

    def _decrypt_file(self, path: Path, fmt: str) -> None:
        rel = relative(self.root, path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ValueError(f"lstat {rel}: no such file or directory") from None
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"cannot decrypt irregular file {rel} as it has file mode type bits set")
        if st.st_size > MAX_ENCRYPTED_FILE_SIZE:
            raise ValueError(f"cannot decrypt file {rel} with size ({st.st_size} bytes) exceeding limit "
                             f"({MAX_ENCRYPTED_FILE_SIZE})")
        data = path.read_bytes()
        if MARKERS.get(fmt, MARKERS["json"]) not in data:
            return
        try:
            plain = self.sops(data, fmt, fmt)
        except ValueError as exc:
            raise ValueError(f"failed to decrypt {rel}: {exc}") from None
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as out:
            out.write(plain)
        os.chmod(path, 0o600)

    # ------------------------------------------------------------------ objects (after the build)

    def decrypt_object(self, obj: dict) -> dict | None:
        """The decrypted object, or None when there is nothing to decrypt. Raises DecryptionError with
        Flux's message ("failed to decrypt and format 'ns/name' Secret data: ...")."""
        if self.spec.get("provider") != PROVIDER:
            return None
        meta = obj.get("metadata") or {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if is_encrypted_object(obj):
            try:
                plain = self.sops(json.dumps(obj).encode(), "json", "json")
                return json.loads(plain)
            except ValueError as exc:
                raise DecryptionError(f"failed to decrypt and format '{where}' {obj.get('kind')} data: {exc}") from None
        if obj.get("kind") != "Secret" or not isinstance(obj.get("data"), dict):
            return None
        data, changed = dict(obj["data"]), False
        for key, value in obj["data"].items():
            try:
                raw = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue  # not base64: the apiserver will say so
            fmt = _detect_format(raw, key)
            if fmt is None:
                continue
            try:
                data[key] = base64.b64encode(self.sops(raw, fmt, format_for_path(key))).decode()
            except ValueError as exc:
                raise DecryptionError(f"failed to decrypt and format '{where}' Secret field '{key}': {exc}") from None
            changed = True
        return {**obj, "data": data} if changed else None


def _age_identities(text: str) -> list[str]:
    """The age identities of a key file (comments and blank lines skipped); ValueError if malformed."""
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _AGE_IDENTITY.match(line):
            raise ValueError(f"malformed secret key at line {number}: expected an age identity "
                             "(AGE-SECRET-KEY-1...)")
        identities.append(line)
    if not identities:
        raise ValueError("no secret keys found")
    return identities


def _source_references(content: dict):
    """``(path, sops format)`` of what a kustomization's generators and patches read, as Flux decrypts."""
    for generator in content.get("secretGenerator") or []:
        if not isinstance(generator, dict):
            continue
        for source in generator.get("files") or []:
            if isinstance(source, str):
                key, _, path = source.partition("=")
                yield (path or key), format_for_path(key)
        for source in generator.get("envs") or []:
            if isinstance(source, str):
                fmt = format_for_path(source)
                yield source, ("dotenv" if fmt == "binary" else fmt)
    for patch in content.get("patches") or []:
        if isinstance(patch, dict) and isinstance(patch.get("path"), str) and not is_remote(patch["path"]):
            yield patch["path"], format_for_path(patch["path"])


def _sops_message(stderr: str, home: Path) -> str:
    """sops' error as one line, without any value it quotes, its wrapped lines joined and the private home
    directory (key search paths) left out."""
    text = _UNENCRYPTED_VALUE.sub("Input string <redacted> does not match sops' data format", stderr)
    text = re.sub(r"\s*Did not find keys in locations .*?'SOPS_AGE_KEY_CMD'\.", "", text.replace("\n", " \n"),
                  flags=re.S)
    parts = []
    for line in text.splitlines():
        line = line.strip()
        line = line[2:] if line.startswith("| ") else line
        line = "- " + line[4:] if line.startswith("- | ") else line
        if line:
            parts.append(line)
    return " ".join(parts).replace(str(home), "~") or "sops failed"
