"""What the next reconciliation of a Kustomization or a HelmRelease would change, as data (no terminal).

- :func:`kustomization_next_apply`: the artifact of the Kustomization's source (``status.artifact``, fetched
  as the kustomize-controller fetches it, ``$SOURCE_CONTROLLER_LOCALHOST`` honoured by
  :func:`controllers.lib.fetch.fetch_artifact`), built with the Kustomization's spec as the controller builds
  it (:func:`controllers.lib.kustomize.build.build`: ``spec.path``, patches, SOPS decryption, ``postBuild``
  substitutions), then dry-run against the cluster (:func:`controllers.lib.kustomize.diff.diff_kustomization`,
  prune included);
- :func:`helm_release_diff`: the release the HelmRelease's next upgrade would make
  (:func:`render_helm_release`, over :func:`controllers.lib.helm_release.render_next`), dry-run against the
  cluster, the objects the upgrade would delete included (:func:`release_diff`).

Everything runs with the caller's client, so the caller's RBAC applies (the controllers' impersonation of
``spec.serviceAccountName`` is not reproduced). A failure to compute the preview raises :class:`PreviewError`
whose message names the object and the step that failed; a per-object dry-run failure is data (``errors``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from controllers.api.objects import dig

if TYPE_CHECKING:
    from controllers.lib.kustomize.diff import KustomizationDiff
    from controllers.runtime.kube import KubeClient

#: the floor of Flux's GetTimeout (the kustomize-controller's ``Options.min_timeout`` default).
MIN_TIMEOUT = 30.0


class PreviewError(Exception):
    """The preview cannot be computed; the message says which object and what failed."""


# ----------------------------------------------------------------------------------------------- Kustomization

def kustomization_next_apply(kube: "KubeClient", kustomization: dict, workdir: str, *,
                             timeout: float | None = None) -> "KustomizationDiff":
    """What the next apply of ``kustomization`` (the live object) would change: see the module docstring.

    ``workdir`` (an existing, empty directory the caller removes) receives the extracted artifact.
    ``timeout`` bounds the download and the build (default Flux's: ``spec.timeout``, else the interval minus
    30 s, at least 30 s)."""
    from controllers.api.source import BUCKET, EXTERNAL_ARTIFACT, GIT_REPOSITORY, OCI_REPOSITORY
    from controllers.lib.fetch import FetchError, fetch_artifact
    from controllers.lib.kustomize.build import build
    from controllers.lib.kustomize.diff import diff_kustomization
    from controllers.runtime.apply import ResourceManager
    from controllers.runtime.kube import KubeError, NotFound
    from controllers.runtime.outcomes import ReconcileError

    name, namespace = dig(kustomization, "metadata.name"), dig(kustomization, "metadata.namespace")
    where = f"Kustomization {namespace}/{name}"
    spec = kustomization.get("spec") or {}
    if spec.get("kubeConfig"):
        raise PreviewError(f"{where}: applies to a remote cluster (spec.kubeConfig): no preview")
    ref = spec.get("sourceRef") or {}
    kinds = {k.kind: k for k in (OCI_REPOSITORY, GIT_REPOSITORY, BUCKET, EXTERNAL_ARTIFACT)}
    source_kind, source_name = ref.get("kind", ""), ref.get("name", "")
    source_ns = ref.get("namespace") or namespace
    source_ref = f"{source_kind} '{source_ns}/{source_name}'"
    if source_kind not in kinds:
        raise PreviewError(f"{where}: source kind '{source_kind}' not supported")
    try:
        source = kube.get(kinds[source_kind], source_name, source_ns)
    except NotFound:
        raise PreviewError(f"{where}: source {source_ref} not found") from None
    except KubeError as exc:
        raise PreviewError(f"{where}: source {source_ref}: {exc.message}") from None
    artifact = dig(source, "status.artifact")
    if not artifact or not artifact.get("url"):
        raise PreviewError(f"{where}: source {source_ref} has no artifact yet")
    timeout = timeout if timeout is not None else _flux_timeout(kustomization)
    root = Path(workdir) / "artifact"
    try:
        fetch_artifact(artifact, root, timeout=timeout, user_agent="fluxpy")
    except FetchError as exc:
        raise PreviewError(f"{where}: artifact of {source_ref} (revision {artifact.get('revision', '')}): "
                           f"{exc.message}") from None
    try:
        result = build(root, spec, name=name, namespace=namespace, kube=kube, timeout=timeout)
    except ReconcileError as exc:  # BuildError, ArtifactError (spec.path), DecryptionError, EncryptedSecretError
        raise PreviewError(f"{where}: build of revision {artifact.get('revision', '')}: {exc.message}") from None
    except KubeError as exc:  # a decryption Secret or substituteFrom object the client may not read
        raise PreviewError(f"{where}: build of revision {artifact.get('revision', '')}: {exc.message}") from None
    return diff_kustomization(ResourceManager(kube), result.objects, kustomization)


def _flux_timeout(obj: Mapping) -> float:
    """Flux's GetTimeout: ``spec.timeout``, else the interval minus 30 s; at least :data:`MIN_TIMEOUT`."""
    from controllers.api.duration import parse_duration

    try:
        value = dig(obj, "spec.timeout")
        seconds = parse_duration(value) if value else parse_duration(dig(obj, "spec.interval") or "10m") - 30.0
    except ValueError:
        seconds = 0.0
    return max(seconds, MIN_TIMEOUT)


# ----------------------------------------------------------------------------------------------- HelmRelease

@dataclasses.dataclass
class HelmReleaseDiff:
    """What the HelmRelease's next upgrade would change: ``changed``; ``diff``, the text ``fluxpy diff hr``
    prints (uncoloured: ``► Kind/namespace/name created|drifted|deleted`` and unified diffs); ``objects``, the
    ``Kind/namespace/name`` of each object created, drifted or deleted; ``errors``, the dry-run failures (one
    per object); ``result``, the full :class:`~controllers.lib.kustomize.diff.KustomizationDiff`."""

    changed: bool
    diff: str
    objects: list[str]
    errors: list[str]
    result: "KustomizationDiff" = dataclasses.field(repr=False)

    @classmethod
    def of(cls, result: "KustomizationDiff") -> "HelmReleaseDiff":
        from controllers.lib.kustomize.diff import render_diff

        return cls(result.changed, render_diff(result, color=False),
                   [o.ref.subject for o in result.objects if o.changed], list(result.errors), result)


def render_helm_release(kube: "KubeClient", helmrelease: dict, workdir: str, *, extra_values: Iterable[dict] = (),
                        timeout: float = 60.0) -> dict:
    """The release the next upgrade of ``helmrelease`` (the live object) would make (chart artifact
    downloaded into ``workdir``; ``extra_values`` merged over its values, in order)."""
    from controllers.lib.fetch import FetchError
    from controllers.lib.helm_release import RenderError, render_next
    from controllers.lib.values import ValuesReferenceError
    from controllers.runtime.kube import KubeError

    where = f"HelmRelease {dig(helmrelease, 'metadata.namespace')}/{dig(helmrelease, 'metadata.name')}"
    try:
        release, _ = render_next(kube, helmrelease, workdir, extra_values=extra_values, timeout=timeout)
    except (RenderError, ValuesReferenceError) as exc:
        raise PreviewError(f"{where}: {exc}") from None
    except FetchError as exc:
        raise PreviewError(f"{where}: chart artifact: {exc.message}") from None
    except KubeError as exc:
        raise PreviewError(f"{where}: chart source: {exc.message}") from None
    return release


def release_diff(kube: "KubeClient", helmrelease: dict, release: dict) -> HelmReleaseDiff:
    """Diff a rendered ``release`` (:func:`render_helm_release`) against the cluster and the deployed release
    in Helm's storage. Reading the storage raises the client's KubeError or a StorageError as they are."""
    from controllers.lib.helm_release import diff_release, storage_namespace
    from controllers.lib.helm_storage import ReleaseStorage

    current = ReleaseStorage(kube, storage_namespace(helmrelease)).deployed(release["name"])
    return HelmReleaseDiff.of(diff_release(kube, helmrelease, release, current))


def helm_release_diff(kube: "KubeClient", helmrelease: dict, workdir: str, *, extra_values: Iterable[dict] = (),
                      timeout: float = 60.0) -> HelmReleaseDiff:
    """What the next upgrade of ``helmrelease`` (the live object) would change: :func:`render_helm_release`
    then :func:`release_diff`, every failure a :class:`PreviewError`."""
    from controllers.lib.helm_release import storage_namespace
    from controllers.lib.helm_storage import StorageError
    from controllers.runtime.kube import KubeError

    release = render_helm_release(kube, helmrelease, workdir, extra_values=extra_values, timeout=timeout)
    where = f"HelmRelease {dig(helmrelease, 'metadata.namespace')}/{dig(helmrelease, 'metadata.name')}"
    try:
        return release_diff(kube, helmrelease, release)
    except KubeError as exc:
        raise PreviewError(f"{where}: Helm storage in namespace '{storage_namespace(helmrelease)}': "
                           f"{exc.message}") from None
    except StorageError as exc:
        raise PreviewError(f"{where}: failed to decode the Helm storage object: {exc}") from None
