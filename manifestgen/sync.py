"""The files bootstrap commits and the Secret it creates: options in, manifests out (no I/O).

What ``flux bootstrap`` writes, file for file (Flux 2.7's ``pkg/manifestgen/sync``, ``kustomization`` and
``sourcesecret``)::

    <path>/<namespace>/gotk-components.yaml   the install manifests (manifestgen.install), with their header
    <path>/<namespace>/gotk-sync.yaml         GitRepository + Kustomization named after the namespace
    <path>/<namespace>/kustomization.yaml     every manifest of the directory as a resource (only when the
                                              directory has no kustomization file: a user's patches stay)

and the ``<secret>`` Secret the GitRepository authenticates with: ``username``/``password`` (token auth) or
``identity``/``identity.pub``/``known_hosts`` (SSH; ``password`` is the key's passphrase). SSH keys are
generated here too (randomness, no I/O): ECDSA P-384 by default, as Flux.

One deliberate difference: a generated (or given PKCS#8) Ed25519 private key is written in OpenSSH's own
format, because OpenSSH — which fluxpy's source-controller runs through git — does not read PKCS#8 Ed25519
keys. Go's ``ssh.ParsePrivateKey`` (Flux) reads both, so the Secret still works with Flux.
"""
from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from controllers.api.duration import format_duration
from controllers.api.meta import is_dns1123_label, is_dns1123_subdomain
from manifestgen.install import GEN_WARNING, dump_documents, environment

__all__ = [
    "COMPONENTS_FILE", "SYNC_FILE", "KUSTOMIZATION_FILE", "KUSTOMIZATION_FILES", "File", "SyncOptions",
    "SyncManifest", "generate", "components_file", "kustomization_resources", "generate_kustomization",
    "safe_relative_path", "KeyPair", "KEY_ALGORITHMS", "ECDSA_CURVES", "generate_keypair", "load_keypair",
    "GitSecretOptions", "generate_git_secret", "secret_data",
]

#: the install manifests' file name (Flux's ``ManifestFile`` default).
COMPONENTS_FILE = "gotk-components.yaml"
#: the sync manifests' file name.
SYNC_FILE = "gotk-sync.yaml"
#: the kustomization file bootstrap writes.
KUSTOMIZATION_FILE = "kustomization.yaml"
#: the names kustomize recognises, in its order of preference.
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: the Kustomization's interval: fixed at 10 minutes, as Flux's bootstrap writes it.
KUSTOMIZATION_INTERVAL = 600.0

_URL = re.compile(r"^(https?|ssh)://[^/\s]+(/\S*)?$")


@dataclasses.dataclass(frozen=True)
class File:
    """A file to commit: its path relative to the repository root (``/``-separated) and its text."""

    path: str
    content: str


# --------------------------------------------------------------------------------------------- paths


def safe_relative_path(value: str) -> str:
    """Flux's ``--path`` value: ``""`` when empty, else ``./<clean path>`` (``./`` for the root).

    Unlike Flux, which silently flattens ``../x`` into ``x``, a path that is absolute or leads outside the
    repository is refused (ValueError naming it and what is accepted), so nothing lands where the user
    did not mean.
    """
    raw = (value or "").strip()
    if not raw:
        return ""
    if raw.startswith("/") or raw.startswith("\\") or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise ValueError(f"invalid path {raw!r}: it must be relative to the repository root "
                         "(e.g. clusters/my-cluster), not absolute")
    cleaned = posixpath.normpath(raw.replace("\\", "/"))
    if cleaned == ".." or cleaned.startswith("../"):
        raise ValueError(f"invalid path {raw!r}: it leads outside the repository; give a directory inside it "
                         "(e.g. clusters/my-cluster)")
    return "./" if cleaned == "." else f"./{cleaned}"


def _repo_path(*parts: str) -> str:
    """Join path parts into a clean repository-relative path (no leading ``./``)."""
    joined = posixpath.normpath(posixpath.join(*[p for p in parts if p] or ["."]))
    return "" if joined == "." else joined


def kustomization_path(target_path: str) -> str:
    """The Kustomization's ``spec.path`` for a target path: ``./`` + the path without its ``./``."""
    return "./" + target_path.removeprefix("./")


def normalize_kustomization_path(path: str) -> str:
    """A Kustomization path in one form, to compare two of them (Flux's rule: no trailing ``/`` except
    for ``./``, always a leading ``./``)."""
    if len(path) > 2:
        path = path.rstrip("/")
    return "./" + path.removeprefix("./")


# --------------------------------------------------------------------------------------------- sync


@dataclasses.dataclass
class SyncOptions:
    """The GitRepository and Kustomization that make a cluster follow its repository."""

    #: the repository URL the cluster fetches from (``ssh://`` for deploy keys, ``https://`` for tokens).
    url: str
    #: name of both objects (Flux names them after the namespace).
    name: str = "flux-system"
    #: namespace of both objects (the controllers' namespace).
    namespace: str = "flux-system"
    #: branch to follow.
    branch: str = "main"
    tag: str = ""
    semver: str = ""
    commit: str = ""
    #: name of the Secret holding the credentials ("" for none, e.g. a public repository).
    secret: str = "flux-system"
    #: the GitRepository's interval in seconds (``--interval``, default 1m).
    interval: float = 60.0
    #: the cluster's directory in the repository, as :func:`safe_relative_path` returns it.
    target_path: str = ""
    manifest_file: str = SYNC_FILE
    recurse_submodules: bool = False
    #: the GitRepository's ``provider`` (e.g. ``azure``, ``github``); "" for generic.
    provider: str = ""
    sparse_checkout: list[str] = dataclasses.field(default_factory=list)

    @property
    def directory(self) -> str:
        """Where the generated files live in the repository: ``<path>/<namespace>``."""
        return _repo_path(self.target_path, self.namespace)

    @property
    def kustomization_path(self) -> str:
        return kustomization_path(self.target_path)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid option."""
        if not _URL.match(self.url or ""):
            raise ValueError(f"invalid repository URL {self.url!r}: expected ssh://, https:// or http:// with a host")
        for what, value in (("name", self.name), ("namespace", self.namespace)):
            if not is_dns1123_label(value):
                raise ValueError(f"invalid {what} {value!r}: must be a DNS-1123 label")
        if self.secret and not is_dns1123_subdomain(self.secret):
            raise ValueError(f"invalid secret name {self.secret!r}: must be a DNS-1123 subdomain")
        if not (self.branch or self.tag or self.semver or self.commit):
            raise ValueError("a branch, tag, semver range or commit is required")
        if self.interval <= 0:
            raise ValueError("the interval must be positive")
        if self.target_path and safe_relative_path(self.target_path) != self.target_path:
            raise ValueError(f"invalid target path {self.target_path!r}: expected the form ./dir/subdir")
        for directory in self.sparse_checkout:
            safe_relative_path(directory)


@dataclasses.dataclass(frozen=True)
class SyncManifest:
    """``gotk-sync.yaml``: the file and the objects in it."""

    file: File
    objects: list[dict[str, Any]]


def generate(options: SyncOptions) -> SyncManifest:
    """Validate ``options`` and return gotk-sync.yaml: the generated-by header, then the GitRepository and
    the Kustomization (keys sorted, as Flux marshals them)."""
    options.validate()
    ref = {k: v for k, v in (("branch", options.branch), ("tag", options.tag), ("semver", options.semver),
                             ("commit", options.commit)) if v}
    text = environment().get_template("sync.yaml.j2").render(
        name=options.name, namespace=options.namespace, interval=format_duration(options.interval),
        url=options.url, ref=ref, secret=options.secret, recurse_submodules=options.recurse_submodules,
        provider=options.provider, sparse_checkout=list(options.sparse_checkout),
        path=options.kustomization_path)
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    content = f"{GEN_WARNING}\n{dump_documents(objects)}"
    return SyncManifest(File(_repo_path(options.directory, options.manifest_file), content), objects)


def components_file(manifest_yaml: str, target_path: str, namespace: str) -> File:
    """``gotk-components.yaml``: the install manifest text (already headed by manifestgen.install)."""
    return File(_repo_path(target_path, namespace, COMPONENTS_FILE), manifest_yaml)


def kustomization_resources(entries: Iterable[tuple[str, str | None]]) -> list[str]:
    """The resources of a generated kustomization.yaml, from a walk of its directory.

    ``entries`` are ``(relative path, text)`` for files and ``(relative path, None)`` for sub-directories
    that hold a kustomization file (added whole, as Flux does). A file is a resource when every document in
    it is a Kubernetes object (has ``apiVersion`` and ``kind``); kustomization files themselves are not.
    The result is in walk order (sorted by path).
    """
    resources = []
    for path, text in sorted(entries, key=lambda e: e[0]):
        if text is None:
            resources.append(path)
            continue
        if posixpath.basename(path) in KUSTOMIZATION_FILES:
            continue
        if _is_manifest(text):
            resources.append(path)
    return resources


def _is_manifest(text: str) -> bool:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return False
    return bool(docs) and all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") for d in docs)


def generate_kustomization(directory: str, resources: list[str]) -> File:
    """``<directory>/kustomization.yaml`` listing ``resources`` (Flux's generated form)."""
    text = environment().get_template("sync-kustomization.yaml.j2").render(resources=resources)
    obj = yaml.safe_load(text)
    body = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)
    return File(_repo_path(directory, KUSTOMIZATION_FILE), body)


# --------------------------------------------------------------------------------------------- SSH keys

#: ``--ssh-key-algorithm`` values.
KEY_ALGORITHMS = ("rsa", "ecdsa", "ed25519")
#: ``--ssh-ecdsa-curve`` values.
ECDSA_CURVES = ("p256", "p384", "p521")


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """An SSH key pair: the private key (PEM or OpenSSH format) and the public key as an authorized_keys
    line (``<type> <base64>\\n``)."""

    private_key: bytes
    public_key: bytes

    @property
    def public_key_text(self) -> str:
        return self.public_key.decode().strip()


def generate_keypair(algorithm: str = "ecdsa", *, rsa_bits: int = 2048, ecdsa_curve: str = "p384") -> KeyPair:
    """A new key pair: RSA (PKCS#8), ECDSA (PKCS#8) or Ed25519 (OpenSSH format, see the module notes)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm == "rsa":
        if rsa_bits < 1024 or rsa_bits % 8:
            raise ValueError(f"invalid RSA key size {rsa_bits}: must be a multiple of 8 and at least 1024")
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif algorithm == "ecdsa":
        curves = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}
        if ecdsa_curve not in curves:
            raise ValueError(f"unsupported ECDSA curve {ecdsa_curve!r}, must be one of: {', '.join(ECDSA_CURVES)}")
        key = ec.generate_private_key(curves[ecdsa_curve]())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported SSH key algorithm {algorithm!r}, must be one of: {', '.join(KEY_ALGORITHMS)}")
    return _keypair(key, b"")


def load_keypair(private_key: bytes, password: str = "") -> KeyPair:
    """The key pair of a private key (PEM or OpenSSH format, optionally encrypted with ``password``).

    The private key is kept as given, except an unencrypted PKCS#8 Ed25519 key, which is re-encoded in
    OpenSSH format (the same key) so that OpenSSH can use it. ValueError when it cannot be read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    secret = password.encode() if password else None
    if not private_key.strip():
        raise ValueError("failed to read the private key: the file is empty")
    if b"OPENSSH PRIVATE KEY" in private_key and _openssh_encrypted(private_key):
        # reading an encrypted OpenSSH key needs bcrypt; its public key is stored in clear, which is all we need
        # (a wrong passphrase shows when git uses the key)
        if not password:
            raise ValueError("failed to read the private key: it is encrypted (pass its passphrase with --password)")
        return KeyPair(private_key, _openssh_public_line(private_key))
    try:
        if b"OPENSSH PRIVATE KEY" in private_key:
            key = serialization.load_ssh_private_key(private_key, secret)
        else:
            key = serialization.load_pem_private_key(private_key, secret)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise ValueError(f"failed to read the private key: {exc} (pass its passphrase with --password)") from None
    except ValueError as exc:
        text = str(exc)
        if password and ("decrypt" in text.lower() or "bad decrypt" in text.lower() or "incorrect password" in text):
            raise ValueError("failed to read the private key: wrong passphrase (--password)") from None
        if "Unable to load PEM" in text or "MalformedFraming" in text or "Could not deserialize" in text:
            text = "not a private key in PEM or OpenSSH format"
        hint = " (wrong passphrase?)" if password else ""
        raise ValueError(f"failed to read the private key: {_first_line(text)}{hint}") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises several kinds for malformed input
        raise ValueError(f"failed to read the private key: {_first_line(str(exc)) or type(exc).__name__}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey) and b"OPENSSH PRIVATE KEY" not in private_key and not password:
        return _keypair(key, b"")
    return KeyPair(private_key, _public_line(key))


def _openssh_container(private_key: bytes) -> tuple[bytes, bytes]:
    """``(cipher name, first public key blob)`` of an ``openssh-key-v1`` file; ValueError when malformed."""
    import base64
    import struct

    body = b"".join(line.strip() for line in private_key.strip().splitlines()[1:-1])
    try:
        data = base64.b64decode(body, validate=False)
    except ValueError:
        raise ValueError("failed to read the private key: not a private key in PEM or OpenSSH format") from None
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        raise ValueError("failed to read the private key: not a private key in PEM or OpenSSH format")
    fields, pos = [], len(magic)
    try:
        for _ in range(3):  # cipher name, kdf name, kdf options
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            fields.append(data[pos + 4:pos + 4 + length])
            pos += 4 + length
        (count,) = struct.unpack(">I", data[pos:pos + 4])
        pos += 4
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        blob = data[pos + 4:pos + 4 + length]
    except struct.error:
        raise ValueError("failed to read the private key: truncated OpenSSH key") from None
    if count < 1 or len(blob) != length:
        raise ValueError("failed to read the private key: truncated OpenSSH key")
    return fields[0], blob


def _openssh_encrypted(private_key: bytes) -> bool:
    try:
        return _openssh_container(private_key)[0] != b"none"
    except ValueError:
        return False


def _openssh_public_line(private_key: bytes) -> bytes:
    import base64
    import struct

    blob = _openssh_container(private_key)[1]
    (length,) = struct.unpack(">I", blob[:4])
    key_type = blob[4:4 + length].decode()
    return f"{key_type} {base64.b64encode(blob).decode()}\n".encode()


def _keypair(key, password: bytes) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    encryption = serialization.NoEncryption()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    else:
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return KeyPair(private, _public_line(key))


def _public_line(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --------------------------------------------------------------------------------------------- Secret


@dataclasses.dataclass
class GitSecretOptions:
    """The credentials a GitRepository uses, in Flux's Secret keys."""

    name: str = "flux-system"
    namespace: str = "flux-system"
    #: basic auth (both required, as Flux).
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    #: PEM CA bundle of the Git host (``ca.crt``).
    ca_crt: bytes = b""
    #: SSH identity; used together with ``known_hosts``.
    keypair: KeyPair | None = None
    #: the host's public keys in known_hosts format.
    known_hosts: bytes = b""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def secret_data(options: GitSecretOptions) -> dict[str, str]:
    """The Secret's ``stringData``, as Flux's ``sourcesecret.GenerateGit`` fills it."""
    data: dict[str, str] = {}
    if options.username and options.password:
        data["username"] = options.username
        data["password"] = options.password
    if options.bearer_token:
        data["bearerToken"] = options.bearer_token
    if options.ca_crt:
        data["ca.crt"] = options.ca_crt.decode()
    if options.keypair is not None and options.known_hosts:
        data["identity"] = options.keypair.private_key.decode()
        data["identity.pub"] = options.keypair.public_key.decode()
        data["known_hosts"] = options.known_hosts.decode()
        if options.password:
            data["password"] = options.password
    return data


def generate_git_secret(options: GitSecretOptions) -> dict[str, Any]:
    """The Secret (with ``stringData``) for ``options``."""
    if options.keypair is not None and not options.known_hosts:
        raise ValueError("an SSH identity needs the host's known_hosts")
    text = environment().get_template("secret-git.yaml.j2").render(
        name=options.name, namespace=options.namespace, labels=options.labels, data=secret_data(options))
    secret = yaml.safe_load(text)
    if secret.get("stringData") is None:
        secret["stringData"] = {}
    return secret


def files_by_path(files: Iterable[File]) -> Mapping[str, str]:
    """``{path: content}`` of files (the last one wins)."""
    return {f.path: f.content for f in files}
