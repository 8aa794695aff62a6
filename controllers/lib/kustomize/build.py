"""Building a Kustomization: from an extracted artifact and ``spec`` to the list of objects to apply.

For the reconciler::

    result = build(root, spec, name=..., namespace=..., kube=kube)   # BuildResult(objects, digest)

``root`` is the extracted artifact (see :mod:`controllers.lib.fetch`), ``spec`` the Kustomization's
spec, ``kube`` a client that may read the decryption Secret and the ``substituteFrom`` ConfigMaps/Secrets
(the build never writes to the cluster). Failures raise :class:`~controllers.lib.kustomize.errors.BuildError`
(reason BuildFailed), :class:`~controllers.lib.kustomize.errors.ArtifactError` (ArtifactFailed: ``spec.path``
not in the artifact) or :class:`~controllers.lib.kustomize.errors.EncryptedSecretError` (ReconciliationFailed),
each with Flux's message shape. The steps, as Flux's kustomize-controller runs them:

1. ``spec.path`` is resolved inside the root (``..`` and symlinks cannot leave it);
2. :func:`generate` writes the directory's kustomization file: when there is none, one listing every
   ``.yaml``/``.yml`` file below it (recursively; a sub-directory with its own kustomization file is listed
   as a directory) — every such file must be Kubernetes YAML, as in Flux; then the spec's
   ``targetNamespace``, ``namePrefix``, ``nameSuffix``, ``patches``, ``components`` and ``images`` are set on
   it (an existing kustomization without resources also gets ``buildMetadata: [originAnnotations]``, as
   Flux does);
3. with ``decryption.provider: sops``, the files generators and patches read are decrypted in place;
4. every path the kustomizations read is checked to stay inside the root, and remote bases are refused
   with ``no_remote_bases`` (kustomize then also runs without git and network);
5. the real ``kustomize build --load-restrictor LoadRestrictionsNone`` (plugins, exec and helm disabled);
6. per object, SOPS decryption, then ``postBuild`` substitution (:mod:`controllers.lib.kustomize.envsubst`)
   on its YAML text;
7. the objects are read as Flux reads them (Lists expanded; documents without apiVersion/kind/name and
   kustomize's own config kinds dropped); ``digest`` is ``sha256:<hex>`` of the built YAML (Flux's history
   checksum); ``commonMetadata`` labels/annotations are set on every object (metadata only, not
   selectors); a Secret still SOPS-encrypted is refused.

``flux build kustomization`` is :func:`build_local`: the same build on a copy of a local directory, without
decryption (SOPS values masked as ``**SOPS**``), with the owner labels set; :func:`objects_to_yaml` prints
the result as flux does.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import yaml

from controllers.lib.kustomize import tree
from controllers.lib.kustomize.decrypt import PROVIDER, DecryptionError, Decryptor, is_encrypted_secret
from controllers.lib.kustomize.envsubst import EnvsubstError, PostBuild
from controllers.lib.kustomize.errors import ArtifactError, BuildError, EncryptedSecretError
from controllers.runtime.apply import Owner

KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"
#: What ``flux build`` shows instead of SOPS-encrypted values.
SOPS_MASK = "**SOPS**"
DEFAULT_TIMEOUT = 300.0
#: a YAML file whose aliases expand to more nodes than this is refused before kustomize reads it
MAX_EXPANDED_NODES = 1_000_000
_PLACEHOLDER_NAMESPACE = "_placeholder"
_MANIFEST_EXTENSIONS = (".yaml", ".yml")

#: ``exclude(path relative to the built directory, is_dir)`` leaves a file out of a generated kustomization.
Exclude = Callable[[str, bool], bool]


@dataclasses.dataclass
class BuildResult:
    """The objects to apply, in kustomize's order, and the checksum of the built manifests."""

    objects: list[dict]
    digest: str


# ----------------------------------------------------------------------------------------------- the build

def build(root: str | os.PathLike, spec: dict, *, name: str, namespace: str, kube=None,
          strict_substitution: bool = False, no_remote_bases: bool = False,
          sops_age_secret: tuple[str, str] | None = None, timeout: float | None = None) -> BuildResult:
    """Build Kustomization ``namespace/name`` with ``spec`` from the artifact extracted at ``root``.

    The root is modified (generated kustomization file, decrypted files): give each build its own copy.
    ``strict_substitution`` is Flux's StrictPostBuildSubstitutions feature gate, ``no_remote_bases`` its
    ``--no-remote-bases``, ``sops_age_secret`` its ``--sops-age-secret`` as ``(namespace, name)``;
    ``timeout`` bounds kustomize and each sops run.
    """
    root = Path(os.path.realpath(root))
    directory = resolve_path(root, spec.get("path") or "")
    generate(root, directory, spec)
    timeout = timeout or DEFAULT_TIMEOUT
    with contextlib.ExitStack() as stack:
        decryptor = None
        decryption = spec.get("decryption")
        if decryption:
            decryptor = stack.enter_context(Decryptor(kube, namespace, decryption, root,
                                                      sops_age_secret=sops_age_secret, timeout=timeout))
            decryptor.import_keys()
            if decryption.get("provider") == PROVIDER:
                try:
                    decryptor.decrypt_sources(directory)
                except DecryptionError as exc:
                    raise BuildError(f"error decrypting sources: {exc.message}") from None
        check_references(root, directory, no_remote_bases=no_remote_bases)
        text = run_kustomize(directory, root=root, timeout=timeout, offline=no_remote_bases)
        post_build = (PostBuild(spec["postBuild"], namespace, kube, strict=strict_substitution)
                      if spec.get("postBuild") is not None else None)
        documents = []
        for document, obj in _built_objects(text):
            if decryptor is not None:
                try:
                    decrypted = decryptor.decrypt_object(obj)
                except DecryptionError as exc:
                    raise BuildError(f"decryption failed for '{object_label(obj)}': {exc.message}") from None
                if decrypted is not None:
                    obj, document = decrypted, tree.dump_document(decrypted, sort_keys=True)
            if post_build is not None:
                obj, document = _substitute(post_build, obj, document,
                                            lambda: f"post build failed for '{object_label(obj)}'")
            documents.append((document, obj))
    manifests = "---\n".join(document for document, _ in documents)
    objects = read_objects(obj for _, obj in documents)
    set_common_metadata(objects, spec.get("commonMetadata"))
    refuse_encrypted_secrets(objects)
    return BuildResult(objects, "sha256:" + hashlib.sha256(manifests.encode()).hexdigest())


def build_local(path: str | os.PathLike, kustomization: dict, *, kube=None, dry_run: bool = False,
                strict_substitution: bool = False, ignore_paths: Iterable[str] = (),
                timeout: float | None = None) -> list[dict]:
    """``flux build kustomization``: build local directory ``path`` with the Kustomization object's spec.

    Works on a temporary copy (the enclosing Git work tree, without ``.git``, so ``../`` bases resolve):
    the user's files are never touched. As flux: ``.sourceignore`` files and ``ignore_paths`` (gitignore
    patterns) filter the generated kustomization, ``substituteFrom`` is skipped with ``dry_run``, nothing
    is decrypted (SOPS-encrypted Secret values are masked), and the owner labels are set.
    """
    name = (kustomization.get("metadata") or {}).get("name", "")
    namespace = (kustomization.get("metadata") or {}).get("namespace", "")
    spec = kustomization.get("spec") or {}
    source = Path(os.path.realpath(path))
    top = _work_tree(source)
    with tempfile.TemporaryDirectory(prefix="fluxpy-build-") as tmp:
        root = Path(tmp) / "src"
        shutil.copytree(top, root, ignore=shutil.ignore_patterns(".git"), symlinks=False)
        directory = root / os.path.relpath(source, top)
        scan_exclude, resource_exclude = _ignore_rules(directory, ignore_paths)
        try:
            generate(root, directory, spec, scan_exclude=scan_exclude, resource_exclude=resource_exclude)
        except BuildError as exc:
            raise BuildError(f"failed to generate kustomization.yaml: {exc.message}") from None
        text = run_kustomize(directory, root=root, timeout=timeout or DEFAULT_TIMEOUT, offline=False)
        post_build = (PostBuild(spec["postBuild"], namespace, kube, strict=strict_substitution, dry_run=dry_run)
                      if spec.get("postBuild") is not None else None)
        objects = []
        for document, obj in _built_objects(text, check=False):
            if post_build is not None:
                obj, document = _substitute(post_build, obj, document,
                                            lambda: f"var substitution failed for '{_name(obj)}'")
            labels = obj.setdefault("metadata", {}).get("labels") or {}
            obj["metadata"]["labels"] = {**labels, **Owner(name, namespace).labels}
            objects.append(mask_sops_data(obj, document))
    objects = read_objects(objects)
    set_common_metadata(objects, spec.get("commonMetadata"))
    return objects


def _work_tree(path: Path) -> Path:
    """The Git work tree holding ``path``, or ``path`` itself outside Git."""
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path


def _ignore_rules(directory: Path, ignore_paths: Iterable[str]) -> tuple[Exclude | None, Exclude]:
    """flux build's filters: ``.sourceignore`` patterns and ``--ignore-paths`` for scanned files (only when
    there are any), and those plus the default exclusions for the kustomization's resources."""
    from controllers.lib import ignore

    patterns = ignore.load_ignore_files(directory)
    for entry in ignore_paths:
        patterns += ignore.read_patterns(entry)
    matcher = ignore.Matcher([*ignore.vcs_patterns(), *ignore.default_patterns(), *patterns])

    def exclude(rel: str, is_dir: bool) -> bool:
        return matcher.excludes(rel.split("/"), is_dir)

    return (exclude if patterns else None), exclude


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def object_label(obj: dict) -> str:
    """``Kind.version.group/name`` (kustomize's resource id), the way Flux names an object in build errors."""
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    return f"{obj.get('kind') or '[noKind]'}.{version or '[noVer]'}.{group or '[noGrp]'}/{_name(obj)}"


def _substitute(post_build: PostBuild, obj: dict, document: str, where: Callable[[], str]) -> tuple[dict, str]:
    try:
        substituted = post_build.substitute(obj, document)
    except EnvsubstError as exc:
        raise BuildError(f"{where()}: {exc}") from None
    if substituted is None:
        return obj, document
    try:
        docs = [d for d in tree.load_documents(substituted) if d is not None]
    except yaml.YAMLError as exc:
        raise BuildError(f"{where()}: envsubst error: YAMLToJSON: {tree.yaml_error(exc)}") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise BuildError(f"{where()}: envsubst error: the substituted object is not one YAML mapping")
    return docs[0], substituted


# ----------------------------------------------------------------------------------------------- steps

def resolve_path(root: Path, path: str) -> Path:
    """``root/path`` inside the root; ArtifactError "kustomization path not found" when it is missing."""
    directory = tree.secure_join(root, path)
    if not directory.exists():
        shown = os.path.normpath(path.lstrip("/")) if path.strip("/") else "."
        raise ArtifactError(f"kustomization path not found: stat {shown}: no such file or directory")
    return directory


def generate(root: Path, directory: Path, spec: dict, *, scan_exclude: Exclude | None = None,
             resource_exclude: Exclude | None = None) -> Path:
    """Write the kustomization file of ``directory`` with the spec's overlay (see the module docstring);
    return its path. Raises BuildError naming the file (and line) at fault."""
    if not directory.is_dir():
        raise BuildError(f"kustomization path is not a directory: {tree.relative(root, directory)}")
    kfile = tree.kustomization_file(directory)
    if kfile is None:
        kfile = directory / tree.KUSTOMIZATION_FILES[0]
        resources = scan_manifests(root, directory, exclude=scan_exclude)
        content: dict = {"apiVersion": KUSTOMIZE_API_VERSION, "kind": "Kustomization"}
        if resources:
            content["resources"] = resources
        else:
            content["namespace"] = _PLACEHOLDER_NAMESPACE  # kustomize refuses an empty kustomization
    else:
        try:
            content = tree.read_kustomization(kfile, root)
        except ValueError as exc:
            raise BuildError(str(exc)) from None
        content = {"apiVersion": KUSTOMIZE_API_VERSION, "kind": "Kustomization",
                   **{k: v for k, v in content.items() if v is not None}}
        if not content.get("resources"):
            content["buildMetadata"] = ["originAnnotations"]
    if resource_exclude is not None:
        _filter_entries(content, directory, resource_exclude)
    if "targetNamespace" in spec:
        content["namespace"] = spec["targetNamespace"]
    for field in ("namePrefix", "nameSuffix"):
        if field in spec:
            content[field] = spec[field]
    for patch in spec.get("patches") or []:
        entry: dict = {"patch": patch.get("patch", "")}
        target = {k: v for k, v in (patch.get("target") or {}).items() if v}
        if patch.get("target") is not None:
            entry["target"] = target
        content.setdefault("patches", []).append(entry)
    for component in spec.get("components") or []:
        if not tree.is_local_relative(component):
            raise BuildError(f"component path '{component}' must be local and relative")
        if spec.get("ignoreMissingComponents") and not os.path.exists(directory / component):
            continue
        content.setdefault("components", []).append(component)
    for image in spec.get("images") or []:
        override = {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}
        images = content.setdefault("images", [])
        same = [i for i, old in enumerate(images) if isinstance(old, dict) and old.get("name") == image.get("name")]
        if same:
            images[same[0]] = override
        else:
            images.append(override)
    kfile.write_text(tree.dump_document(content))
    return kfile


def _filter_entries(content: dict, directory: Path, exclude: Exclude) -> None:
    """flux build's filter of a kustomization's resources, components and crds by the ignore rules."""
    for field in ("resources", "components", "crds"):
        entries = content.get(field)
        if not isinstance(entries, list):
            continue
        kept = []
        for entry in entries:
            if isinstance(entry, str) and (field == "crds" or "://" not in entry):
                target = directory / entry
                if not os.path.lexists(target):
                    raise BuildError(f"lstat {entry}: no such file or directory")
                if exclude(os.path.relpath(os.path.normpath(target), directory), target.is_dir()):
                    continue
            kept.append(entry)
        content[field] = kept


def scan_manifests(root: Path, directory: Path, *, exclude: Exclude | None = None) -> list[str]:
    """The resources of a generated kustomization: every ``.yaml``/``.yml`` file below ``directory`` in
    lexical walk order, and every sub-directory holding a kustomization file (not descended into), as
    ``./relative/path``. Each file must hold Kubernetes objects: BuildError naming the file and line."""
    found: list[str] = []

    def walk(current: Path) -> None:
        for entry in sorted(os.listdir(current)):
            path = current / entry
            rel = os.path.relpath(path, directory)
            if path.is_dir() and not path.is_symlink():
                if tree.kustomization_file(path) is not None:
                    found.append("./" + rel)
                else:
                    walk(path)
                continue
            if os.path.splitext(entry)[1] not in _MANIFEST_EXTENSIONS:
                continue
            if exclude is not None and exclude(rel, False):
                continue
            _check_manifest(root, path)
            found.append("./" + rel)

    walk(directory)
    return found


class _UniqueKeysLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping key given twice as Go's YAML decoding does (kustomize reports
    it too, but without naming the file)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'mapping key "{key}" already defined at line {seen[key] + 1}', key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _check_manifest(root: Path, path: Path) -> None:
    """What kustomize's resource factory demands of a file it is given: YAML, and per document a kind
    and a name (Lists need no name)."""
    rel = tree.relative(root, path)
    if path.is_symlink() and not tree.inside(root, path):
        raise BuildError(f"failed to decode Kubernetes YAML from {rel}: it links outside the source")
    try:
        documents = list(yaml.load_all(path.read_text(errors="replace"), Loader=_UniqueKeysLoader))
    except yaml.YAMLError as exc:
        raise BuildError(f"failed to decode Kubernetes YAML from {rel}: {tree.yaml_error(exc)}") from None
    for doc in documents:
        if doc is None or doc == {} or doc == []:
            continue
        problem = None
        if not isinstance(doc, dict) or not any(doc.get(k) for k in ("apiVersion", "kind", "metadata")):
            problem = "missing Resource metadata"
        elif not doc.get("kind"):
            problem = "missing kind in object"
        elif not str(doc["kind"]).endswith("List") and not (doc.get("metadata") or {}).get("name"):
            problem = "missing metadata.name in object"
        if problem:
            raise BuildError(f"failed to decode Kubernetes YAML from {rel}: {problem}")


def check_references(root: Path, directory: Path, *, no_remote_bases: bool) -> None:
    """Refuse what Flux's root-confined file system refuses: a kustomization reading a file or directory
    outside the root; and, with ``no_remote_bases``, a remote base or file."""
    follow = ("resources", "components", "bases", "generators", "transformers", "validators")
    try:
        for kdir, kfile, content in tree.kustomizations(root, directory, follow=follow):
            where = tree.relative(root, kfile)
            for field, ref in (*tree.file_references(content), *tree.plugin_references(root, kdir, content)):
                local = Path(ref) if ref.startswith("/") else kdir / ref
                if os.path.lexists(local):
                    if not tree.inside(root, local):
                        raise BuildError(f"kustomize build failed: {where}: {field} entry '{ref}' is outside "
                                         "the source root")
                    continue
                remote = tree.is_remote(ref) or (field in ("resources", "components", "bases")
                                                 and (".git" in ref or "//" in ref))
                if remote and no_remote_bases:
                    raise BuildError(f"kustomize build failed: {where}: remote {field} entry '{ref}' is not "
                                     "allowed (remote bases are disabled)")
    except ValueError as exc:
        raise BuildError(str(exc)) from None


_ANCHOR = re.compile(r"(^|[\s\[{,:-])&[^\s\[\]{},]+")


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is copied out (shared nodes counted each time)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_nodes(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def refuse_yaml_bombs(root: Path) -> None:
    """Refuse a YAML file under ``root`` whose aliases expand beyond :data:`MAX_EXPANDED_NODES` ("billion
    laughs"): kustomize would copy every alias out and grow until it runs out of memory or time. Only files
    with an anchor are parsed; a file that does not parse is left for kustomize to report."""
    for directory, _, files in os.walk(root):
        for file in files:
            path = Path(directory) / file
            if path.suffix not in _MANIFEST_EXTENSIONS or path.is_symlink():
                continue
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if "*" not in text or not _ANCHOR.search(text):
                continue
            try:
                nodes = list(yaml.compose_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
                memo: dict[int, int] = {}
                expanded = sum(_expanded_nodes(node, memo) for node in nodes if node is not None)
            except yaml.YAMLError:
                continue
            except RecursionError:
                raise BuildError(f"failed to decode Kubernetes YAML from {tree.relative(root, path)}: yaml: "
                                 "exceeded max depth") from None
            if expanded > MAX_EXPANDED_NODES:
                raise BuildError(f"failed to decode Kubernetes YAML from {tree.relative(root, path)}: yaml: "
                                 f"document contains excessive aliasing (it expands to {expanded} nodes, more "
                                 f"than {MAX_EXPANDED_NODES})")


def run_kustomize(directory: Path, *, root: Path, timeout: float = DEFAULT_TIMEOUT, offline: bool = False) -> str:
    """``kustomize build --load-restrictor LoadRestrictionsNone`` of ``directory``; its YAML output.

    ``offline`` runs it without git on PATH and behind an unreachable proxy, so no remote base or file can
    be fetched. YAML bombs under ``root`` are refused first (:func:`refuse_yaml_bombs`). Raises BuildError
    "kustomize build failed: ..." with paths shown relative to ``root``.
    """
    from controllers.localcluster.tools import ensure

    refuse_yaml_bombs(root)
    env = dict(os.environ)
    if offline:
        env["PATH"] = ""
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[var] = "http://127.0.0.1:9"
        for var in ("NO_PROXY", "no_proxy"):
            env.pop(var, None)
    command = [str(ensure("kustomize")), "build", "--load-restrictor", "LoadRestrictionsNone", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"kustomize build failed: timed out after {timeout:g}s") from None
    if done.returncode != 0:
        message = done.stderr.strip()
        if "Error: " in message:
            message = message[message.index("Error: ") + len("Error: "):]
        for prefix in (str(root) + os.sep, str(root)):
            message = message.replace(prefix, "" if prefix.endswith(os.sep) else ".")
        raise BuildError(f"kustomize build failed: {message or f'exit status {done.returncode}'}")
    return done.stdout


def split_documents(text: str) -> list[str]:
    """The documents of kustomize's output (separated by ``---`` lines), each ending with a newline."""
    documents, current = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == "---":
            if current:
                documents.append("".join(current))
            current = []
        else:
            current.append(line)
    if current and "".join(current).strip():
        documents.append("".join(current))
    return documents


def _built_objects(text: str, *, check: bool = True):
    """``(document text, object)`` per document of kustomize's output; with ``check``, Flux's demand that
    each has an apiVersion, a kind and a name."""
    for document in split_documents(text):
        try:
            docs = [d for d in tree.load_documents(document) if d is not None]
        except yaml.YAMLError as exc:
            raise BuildError(f"kustomize build failed: {tree.yaml_error(exc)}") from None
        for obj in docs:
            if not isinstance(obj, dict):
                raise BuildError("kustomize build failed: a built document is not a YAML mapping")
            if check and not (obj.get("apiVersion") and obj.get("kind") and _name(obj)):
                raise BuildError("failed to decode Kubernetes apiVersion, kind and name from: "
                                 f"{object_label(obj)}")
            yield document, obj


def read_objects(objects: Iterable[dict]) -> list[dict]:
    """Flux's ReadObjects: Lists expanded into their items; documents without apiVersion, kind or name,
    and kustomize's own config kinds, dropped."""
    result = []
    for obj in objects:
        if isinstance(obj.get("items"), list):  # unstructured's IsList
            result += [item for item in obj["items"] if isinstance(item, dict)]
            continue
        if not (obj.get("apiVersion") and obj.get("kind") and _name(obj)):
            continue
        if str(obj["kind"]).lower() == "kustomization" and str(obj["apiVersion"]).startswith(
                KUSTOMIZE_API_VERSION.split("/")[0] + "/"):
            continue
        result.append(obj)
    return result


def set_common_metadata(objects: list[dict], common: dict | None) -> None:
    """``spec.commonMetadata``: labels and annotations set on every object's metadata (values replaced)."""
    if not common:
        return
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        for field in ("labels", "annotations"):
            merged = {**(metadata.get(field) or {}), **(common.get(field) or {})}
            if merged:
                metadata[field] = merged


def refuse_encrypted_secrets(objects: list[dict]) -> None:
    """EncryptedSecretError for the first Secret still SOPS-encrypted, as Flux refuses to apply it."""
    for obj in objects:
        if is_encrypted_secret(obj):
            metadata = obj.get("metadata") or {}
            where = "/".join(p for p in (metadata.get("namespace"), metadata.get("name")) if p)
            raise EncryptedSecretError(f"Secret/{where} is SOPS encrypted, configuring decryption is required "
                                       "for this secret to be reconciled")


def mask_sops_data(obj: dict, document: str) -> dict:
    """flux build's masking of a Secret's SOPS data: a whole encrypted Secret loses its ``sops`` field and
    every value becomes ``**SOPS**`` (a ``{"mask": ...}`` JSON for dockerconfigjson Secrets); otherwise only
    the values holding SOPS data are masked."""
    if obj.get("kind") != "Secret":
        return obj
    masked = base64.b64encode(SOPS_MASK.encode()).decode()
    data, string_data = dict(obj.get("data") or {}), dict(obj.get("stringData") or {})
    obj = dict(obj)
    if "sops:" in document and "mac: ENC[" in document:
        obj.pop("sops", None)
        if obj.get("type", "Opaque") == "kubernetes.io/dockerconfigjson":
            mask_json = json.dumps({"mask": SOPS_MASK}, separators=(",", ":"))
            data = {k: base64.b64encode(mask_json.encode()).decode() for k in data}
            string_data = {k: mask_json for k in string_data}
        else:
            data = {k: masked for k in data}
            string_data = {k: SOPS_MASK for k in string_data}
    else:
        for key, value in data.items():
            try:
                raw = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                raise BuildError(f"failed to mask secret {_name(obj)} sops data: illegal base64 data in "
                                 f"'{key}'") from None
            if b"sops" in raw and b"ENC[" in raw:
                data[key] = masked
        string_data = {k: (masked if "sops" in str(v) and "ENC[" in str(v) else v)
                       for k, v in string_data.items()}
    if data or "data" in obj:
        obj["data"] = data
    if string_data:
        obj["stringData"] = string_data
    return obj


def objects_to_yaml(objects: Iterable[dict]) -> str:
    """The multi-document YAML ``flux build`` prints: each object as sigs.k8s.io/yaml writes it, then ``---``."""
    return "".join(tree.dump_go_yaml(obj) + "---\n" for obj in objects)
