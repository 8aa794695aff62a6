"""What a HelmRelease renders, the one way the helm-controller and the CLI (``fluxpy build/diff hr``) see it.

- naming as Flux's helm-controller: :func:`release_name` (``[<targetNamespace>-]<name>``, shortened past 53
  characters with a hash: :func:`shorten_name`), :func:`release_namespace`, :func:`storage_namespace`;
- :func:`load_chart`: a chart directory (an extracted chart artifact), its ``Chart.yaml`` and its ``crds/``;
- :func:`render`: the real ``helm`` renders the release (:meth:`controllers.lib.helm.HelmCLI.render_release`),
  then the post renderers run on its manifest as Flux's do — each ``postRenderers[].kustomize`` (patches and
  images, by the real ``kustomize``), then ``commonMetadata``, then the origin labels
  ``helm.toolkit.fluxcd.io/name|namespace`` — and the result is the manifest Helm's storage keeps;
- :func:`manifest_objects` / :func:`release_objects`: the manifest as objects, namespaced ones defaulted to
  the release namespace and carrying Helm's ownership metadata (``app.kubernetes.io/managed-by: Helm``,
  ``meta.helm.sh/release-name|namespace``), so the real ``helm upgrade`` accepts them as the release's;
  :func:`apply_options`: how they are server-side applied (as ``helm-controller``);
- :func:`render_next` and :func:`diff_release`: the release the next upgrade would make from the cluster's
  chart artifact and values, and what applying it would change (``fluxpy build/diff helmrelease``).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from controllers.api import meta
from controllers.api.objects import dig

RELEASE_NAME_MAX = 53
#: the field manager of Flux's helm-controller
FIELD_MANAGER = "helm-controller"
MANAGED_BY_LABEL, MANAGED_BY_HELM = "app.kubernetes.io/managed-by", "Helm"
RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name"
RELEASE_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
ORIGIN_NAME_LABEL, ORIGIN_NAMESPACE_LABEL = f"{meta.HELM_GROUP}/name", f"{meta.HELM_GROUP}/namespace"


class RenderError(Exception):
    """The chart could not be rendered or post-rendered; the message is helm's or kustomize's."""


# ----------------------------------------------------------------------------------------------- naming

def shorten_name(name: str) -> str:
    """Flux's ShortenName: names longer than 53 characters become their first 40 characters, ``-`` and the
    first 12 hex digits of their SHA-256."""
    if len(name) <= RELEASE_NAME_MAX:
        return name
    return name[:RELEASE_NAME_MAX - 13] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def release_name(hr: Mapping) -> str:
    """``spec.releaseName``, else ``[<targetNamespace>-]<name>``; shortened as Flux does."""
    spec = hr.get("spec") or {}
    name = spec.get("releaseName") or "-".join(filter(None, (spec.get("targetNamespace"), dig(hr, "metadata.name"))))
    return shorten_name(name)


def release_namespace(hr: Mapping) -> str:
    return dig(hr, "spec.targetNamespace") or dig(hr, "metadata.namespace")


def storage_namespace(hr: Mapping) -> str:
    return dig(hr, "spec.storageNamespace") or dig(hr, "metadata.namespace")


# ----------------------------------------------------------------------------------------------- charts

@dataclasses.dataclass
class Chart:
    """An extracted chart: its directory, ``Chart.yaml`` and the objects of its ``crds/`` directory."""

    directory: Path
    metadata: dict
    crds: list[dict]

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def version(self) -> str:
        return str(self.metadata.get("version") or "")

    @property
    def app_version(self) -> str:
        return str(self.metadata.get("appVersion") or "")


def load_chart(root: str | os.PathLike) -> Chart:
    """The chart in ``root`` or in its single sub-directory (a chart archive's layout)."""
    root = Path(root)
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    directory = next((c for c in candidates if (c / "Chart.yaml").is_file()), None)
    if directory is None:
        raise RenderError("no Chart.yaml found in the artifact")
    try:
        metadata = yaml.safe_load((directory / "Chart.yaml").read_text()) or {}
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid Chart.yaml: {exc}") from None
    crds: list[dict] = []
    crd_dir = directory / "crds"
    if crd_dir.is_dir():
        for path in sorted(crd_dir.rglob("*")):
            if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
                crds += manifest_objects(path.read_text())
    return Chart(directory, metadata if isinstance(metadata, dict) else {}, crds)


# ----------------------------------------------------------------------------------------------- render

def render(helm, chart: Chart, hr: Mapping, values: dict, *, skip_schema_validation: bool = False,
           timeout: float = 60.0) -> dict:
    """Helm's release object for ``hr`` with ``values``, its manifest post-rendered (see the module
    docstring); RenderError with helm's or kustomize's message."""
    from controllers.lib.helm import HelmError

    try:
        release = helm.render_release(chart.directory, release_name(hr), release_namespace(hr), values,
                                      skip_schema_validation=skip_schema_validation)
    except HelmError as exc:
        raise RenderError(str(exc)) from None
    release["manifest"] = post_render(release.get("manifest") or "", hr, timeout=timeout)
    return release


def post_render(manifest: str, hr: Mapping, *, timeout: float = 60.0) -> str:
    """Flux's post renderers in order: ``spec.postRenderers[].kustomize``, ``commonMetadata``, origin labels."""
    objects = manifest_objects(manifest)
    for renderer in dig(hr, "spec.postRenderers", []) or []:
        kustomize = (renderer or {}).get("kustomize") or {}
        if kustomize.get("patches") or kustomize.get("images"):
            objects = _kustomize(objects, kustomize, timeout)
    common = dig(hr, "spec.commonMetadata") or {}
    origin = origin_labels(hr)
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **(common.get("labels") or {}), **origin}
        if common.get("annotations"):
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **common["annotations"]}
    return objects_manifest(objects)


def origin_labels(hr: Mapping) -> dict[str, str]:
    """Flux's origin labels of everything a HelmRelease applies: ``helm.toolkit.fluxcd.io/name|namespace``."""
    return {ORIGIN_NAME_LABEL: dig(hr, "metadata.name"), ORIGIN_NAMESPACE_LABEL: dig(hr, "metadata.namespace")}


def labelled_crds(chart: "Chart", hr: Mapping) -> list[dict]:
    """The chart's ``crds/`` with the origin labels (so ``fluxpy tree hr`` finds the CRDs a release installed)."""
    crds = copy.deepcopy(chart.crds)
    for crd in crds:
        metadata = crd.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **origin_labels(hr)}
    return crds


def _kustomize(objects: list[dict], spec: Mapping, timeout: float) -> list[dict]:
    from controllers.lib.kustomize.build import BuildError, run_kustomize

    with tempfile.TemporaryDirectory(prefix="fluxpy-postrender-") as tmp:
        root = Path(tmp)
        (root / "helm-output.yaml").write_text(objects_manifest(objects))
        kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                         "resources": ["helm-output.yaml"]}
        if spec.get("patches"):
            kustomization["patches"] = copy.deepcopy(spec["patches"])
        if spec.get("images"):
            kustomization["images"] = copy.deepcopy(spec["images"])
        (root / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        try:
            out = run_kustomize(root, root=root, timeout=timeout, offline=True)
        except BuildError as exc:
            raise RenderError(f"error while running post render on files: {exc}") from None
    return manifest_objects(out)


def manifest_objects(manifest: str) -> list[dict]:
    """The objects of a YAML stream (empty documents dropped); RenderError for YAML that does not parse."""
    from controllers.lib.kustomize.tree import load_documents, yaml_error

    try:
        documents = load_documents(manifest)
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid manifest: {yaml_error(exc)}") from None
    return [d for d in documents if isinstance(d, dict) and d]


def objects_manifest(objects: Iterable[Mapping]) -> str:
    """A manifest (``---`` separated YAML documents) as Helm stores it."""
    return "".join("---\n" + yaml.safe_dump(dict(o), sort_keys=False) for o in objects)


def release_objects(manifest: str, name: str, namespace: str, namespaced=lambda obj: True) -> list[dict]:
    """The manifest's objects as applied: ``namespaced(obj)`` ones without a namespace in ``namespace``, all
    with Helm's ownership metadata for release ``name`` in ``namespace``."""
    objects = manifest_objects(manifest)
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("namespace") and namespaced(obj):
            metadata["namespace"] = namespace
        metadata["labels"] = {**(metadata.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY_HELM}
        metadata["annotations"] = {**(metadata.get("annotations") or {}), RELEASE_NAME_ANNOTATION: name,
                                   RELEASE_NAMESPACE_ANNOTATION: namespace}
    return objects


def owned_by_release(obj: Mapping, name: str, namespace: str) -> bool:
    """Whether a live object carries Helm's ownership metadata of release ``name`` in ``namespace``."""
    annotations = dig(obj, "metadata.annotations") or {}
    return (annotations.get(RELEASE_NAME_ANNOTATION) == name
            and annotations.get(RELEASE_NAMESPACE_ANNOTATION) == namespace
            and (dig(obj, "metadata.labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_HELM)


def apply_options(force: bool = False):
    """Server-side apply as helm-controller, taking over fields the ``helm`` CLI (client- or server-side) and
    kubectl set, so a release made by hand is adopted whole."""
    from controllers.runtime.apply import ApplyOptions, Cleanup, FieldManagerMatch

    managers = tuple(FieldManagerMatch(name, op) for name in ("helm", "kubectl", FIELD_MANAGER)
                     for op in ("Update", "Apply") if not (name == FIELD_MANAGER and op == "Apply"))
    return ApplyOptions(force=force, cleanup=Cleanup(field_managers=managers))


def namespaced_in(kube):
    """``obj -> bool``: whether the server serves ``obj``'s kind namespaced (unknown kinds count as
    namespaced: their apply fails with the apiserver's message)."""
    from controllers.runtime.kube import KubeError

    def namespaced(obj: Mapping) -> bool:
        try:
            return kube.resource_for(str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")).namespaced
        except KubeError:
            return True
    return namespaced


# ----------------------------------------------------------------------------------------------- preview

def chart_source(kube, hr: Mapping) -> dict:
    """The object holding ``hr``'s chart artifact: its ``chartRef``, else the generated HelmChart."""
    from controllers.api.source import EXTERNAL_ARTIFACT, HELM_CHART, OCI_REPOSITORY

    namespace = dig(hr, "metadata.namespace")
    ref = dig(hr, "spec.chartRef")
    if ref:
        kinds = {k.kind: k for k in (OCI_REPOSITORY, HELM_CHART, EXTERNAL_ARTIFACT)}
        if ref.get("kind") not in kinds:
            raise RenderError(f"unsupported chartRef kind '{ref.get('kind')}'")
        return kube.get(kinds[ref["kind"]], ref.get("name"), ref.get("namespace") or namespace)
    chart_ns = dig(hr, "spec.chart.spec.sourceRef.namespace") or namespace
    return kube.get(HELM_CHART, f"{namespace}-{dig(hr, 'metadata.name')}", chart_ns)


def render_next(kube, hr: Mapping, directory: str | os.PathLike, *, extra_values: Iterable[dict] = (),
                timeout: float = 60.0) -> tuple[dict, Chart]:
    """The release the next upgrade of ``hr`` would make: its source's chart artifact (downloaded into
    ``directory``), its values (``valuesFrom``, ``values``, then each of ``extra_values`` merged over them) and
    its post renderers. RenderError (or the fetch's and values' own errors) when it cannot be rendered."""
    from controllers.lib.fetch import fetch_artifact
    from controllers.lib.helm import HelmCLI
    from controllers.lib.values import chart_values, merge_maps

    source = chart_source(kube, hr)
    artifact = dig(source, "status.artifact")
    if not artifact:
        raise RenderError(f"{source.get('kind')} '{dig(source, 'metadata.namespace')}/{dig(source, 'metadata.name')}'"
                          " has no artifact")
    fetch_artifact(artifact, Path(directory) / "chart", timeout=timeout, user_agent="fluxpy")
    chart = load_chart(Path(directory) / "chart")
    values = chart_values(kube, dig(hr, "metadata.namespace"), dig(hr, "spec.values"), dig(hr, "spec.valuesFrom"))
    for extra in extra_values:
        values = merge_maps(values, extra)
    with HelmCLI(timeout) as helm:
        release = render(helm, chart, hr, values, timeout=timeout,
                         skip_schema_validation=bool(dig(hr, "spec.upgrade.disableSchemaValidation")))
    return release, chart


def diff_release(kube, hr: Mapping, release: Mapping, current: Mapping | None):
    """What applying ``release`` would change (a :class:`controllers.lib.kustomize.diff.KustomizationDiff`):
    each object created, drifted or unchanged by a server-side dry run as helm-controller, and the objects of
    the ``current`` release that the upgrade would delete."""
    from controllers.lib.kustomize.diff import DRIFTED, KustomizationDiff, ObjectDiff
    from controllers.runtime.apply import CONFIGURED, DELETED, DryRunError, ObjectRef, ResourceManager
    from controllers.runtime.kube import KubeError

    name, namespace = release_name(hr), release_namespace(hr)
    namespaced = namespaced_in(kube)
    manager = ResourceManager(kube, field_manager=FIELD_MANAGER, owner_group=meta.HELM_GROUP)
    result = KustomizationDiff()
    wanted = set()
    for obj in release_objects(release.get("manifest") or "", name, namespace, namespaced):
        try:
            entry, live, merged = manager.diff(obj, apply_options(bool(dig(hr, "spec.upgrade.force"))))
        except DryRunError as exc:
            result.errors.append(exc.error)
            continue
        except KubeError as exc:
            result.errors.append(exc.message)
            continue
        wanted.add(entry.ref)
        result.objects.append(ObjectDiff(entry.ref, DRIFTED if entry.action == CONFIGURED else entry.action,
                                         live, merged))
    for obj in release_objects((current or {}).get("manifest") or "", name, namespace, namespaced):
        ref = ObjectRef.from_object(obj, namespaced=bool(dig(obj, "metadata.namespace")))
        if ref not in wanted and (dig(obj, "metadata.annotations") or {}).get("helm.sh/resource-policy") != "keep":
            try:
                gone = manager.delete(ref, hold=True) is not None
            except KubeError as exc:
                result.errors.append(f"{ref.subject} query failed: {exc.message}")
                continue
            if not gone:
                result.objects.append(ObjectDiff(ref, DELETED))
    result.objects.sort(key=lambda o: o.ref.sort_key())
    return result
