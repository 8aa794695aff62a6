"""``fluxpy trace <kind> <name>``: which Kustomization or HelmRelease manages an object, from which source and
revision, and each step's Ready state — flux's ``trace``. Beyond flux: for each container image of the object
that an ImagePolicy selected, the policy, its ImageRepository and the ImageUpdateAutomation that pushed it."""
from __future__ import annotations

from typing import List, Optional

import typer

from flux_cli import targets
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

#: what flux shows for each kind in a trace, besides name, namespace, revision and status.
DETAILS = {
    "Kustomization": (("Target", "spec.targetNamespace"), ("Path", "spec.path")),
    "HelmRelease": (("Chart", "spec.chart.spec.chart"), ("Version", "spec.chart.spec.version")),
    "GitRepository": (("URL", "spec.url"), ("Branch", "spec.ref.branch"), ("Tag", "spec.ref.tag"),
                      ("Semver", "spec.ref.semver"), ("Commit", "spec.ref.commit")),
    "OCIRepository": (("URL", "spec.url"), ("Tag", "spec.ref.tag"), ("Semver", "spec.ref.semver"),
                      ("Digest", "spec.ref.digest")),
    "HelmRepository": (("URL", "spec.url"),),
    "HelmChart": (("Chart", "spec.chart"), ("Version", "spec.version")),
    "Bucket": (("Endpoint", "spec.endpoint"), ("Bucket", "spec.bucketName")),
    "ImagePolicy": (("Repository", "spec.imageRepositoryRef.name"),),
    "ImageRepository": (("Image", "spec.image"), ("Scanned at", "status.lastScanResult.scanTime")),
    "ImageUpdateAutomation": (("Push branch", "spec.git.push.branch"), ("Pushed at", "status.lastPushTime")),
}

#: where workload kinds keep their pod spec
POD_SPECS = ("spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec")


def container_images(obj: dict) -> list[str]:
    """The images of every container and init container of a Pod or a workload's pod template."""
    from controllers.api.objects import dig

    images = []
    for path in POD_SPECS:
        pod = dig(obj, path) or {}
        for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            if isinstance(container, dict) and container.get("image") and container["image"] not in images:
                images.append(container["image"])
    return images


def selected_image(policy: dict) -> tuple[str, ...]:
    """The forms an image written from the policy's ``latestRef`` takes (name:tag, with or without digest)."""
    from controllers.api.objects import dig

    ref = dig(policy, "status.latestRef") or {}
    if not ref.get("name"):
        return ()
    tagged = f"{ref['name']}:{ref['tag']}" if ref.get("tag") else ""
    forms = [tagged] if tagged else []
    if ref.get("digest"):
        forms += [f"{tagged}@{ref['digest']}"] if tagged else []
        forms.append(f"{ref['name']}@{ref['digest']}")
    return tuple(forms)


def image_steps(kube, obj: dict) -> list[tuple[object, dict]]:
    """(Kind, object) steps behind the object's images: each ImagePolicy whose latest ref is one of them, its
    ImageRepository, and the ImageUpdateAutomations that observed that ref (image CRDs absent: none)."""
    from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY, IMAGE_UPDATE_AUTOMATION
    from controllers.api.objects import dig
    from controllers.runtime.kube import KubeError

    images = container_images(obj)
    if not images:
        return []
    try:
        policies = kube.list(IMAGE_POLICY)["items"]
        automations = kube.list(IMAGE_UPDATE_AUTOMATION)["items"]
    except KubeError:  # image automation not installed, or not readable by this user
        return []
    steps: list[tuple[object, dict]] = []
    for policy in policies:
        if not set(images) & set(selected_image(policy)):
            continue
        namespace, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
        steps.append((IMAGE_POLICY, policy))
        repository = dig(policy, "spec.imageRepositoryRef") or {}
        try:
            steps.append((IMAGE_REPOSITORY, kube.get(IMAGE_REPOSITORY, repository.get("name", ""),
                                                     repository.get("namespace") or namespace)))
        except KubeError:
            pass
        selected = dig(policy, "status.latestRef")
        steps += [(IMAGE_UPDATE_AUTOMATION, automation) for automation in automations
                  if automation["metadata"]["namespace"] == namespace
                  and _same_tag((dig(automation, "status.observedPolicies") or {}).get(name), selected)]
    return steps


def _same_tag(observed: dict | None, selected: dict) -> bool:
    return bool(observed) and observed.get("name") == selected.get("name") and observed.get("tag") == selected.get("tag")


def section(kind_name: str, obj: dict, revision: str) -> list[tuple[str, str]]:
    """The ``Label: value`` rows describing one step."""
    from controllers.api.objects import dig, find_condition

    rows = [(kind_name, obj["metadata"]["name"]), ("Namespace", obj["metadata"].get("namespace", ""))]
    rows += [(label, str(dig(obj, path))) for label, path in DETAILS.get(kind_name, ()) if dig(obj, path)]
    if revision:
        rows.append(("Revision", revision))
    ready = find_condition(obj, "Ready")
    if dig(obj, "spec.suspend"):
        rows.append(("Status", "Suspended"))
    elif ready and ready.get("status") == "True":
        rows.append(("Status", f"Last reconciled at {ready.get('lastTransitionTime', '')}"))
    elif ready:
        rows.append(("Status", f"Not ready ({ready.get('reason', '')})"))
    else:
        rows.append(("Status", "Unknown"))
    if ready and ready.get("message"):
        rows.append(("Message", ready["message"]))
    return rows


@app.command("trace")
@handle_errors
def trace(
    ctx: typer.Context,
    target: List[str] = typer.Argument(..., metavar="KIND NAME", help="e.g. 'configmap demo' or 'deployment/web'."),
    api_version: Optional[str] = typer.Option(None, "--api-version", help="The object's apiVersion, when ambiguous."),
) -> None:
    """Show which fluxpy object applied an object, its source and revision, and each step's state."""
    from controllers.api.kinds import kind_for, revision_of
    from controllers.runtime import inspect
    from controllers.runtime.kube import NotFound

    a: App = ctx.obj
    kind_word, name = targets.split_kind_name(target)
    rt = a.kube.resource_for(api_version, kind_word) if api_version else None
    if rt is None:
        resolved = inspect.Resolver(a.kube).resource(kind_word)
        rt = resolved or a.kube.find_kind(kind_word)
    namespace = a.namespace if rt.namespaced else None
    try:
        obj = a.kube.get(rt, name, namespace)
    except NotFound:
        raise CLIError(f"{rt.kind} '{namespace + '/' if namespace else ''}{name}' not found") from None
    manager = inspect.manager_of(obj)
    if manager is None:
        raise CLIError(f"{rt.kind}/{name} is not managed by fluxpy (no Kustomization or HelmRelease labels)")
    blocks = [[("Object", f"{rt.kind}/{name}")] + ([("Namespace", namespace)] if namespace else []) +
              [("Status", "Managed by fluxpy")]]
    # the manager, then its source chain (HelmRelease -> HelmChart -> HelmRepository, ...)
    root = inspect.walk(a.kube, manager[0], manager[1], manager[2])
    step = root
    while step is not None:
        if step.obj is None:
            blocks.append([(step.kind, step.name), ("Namespace", step.namespace), ("Status", "Not found")])
            break
        kind = kind_for(step.obj["apiVersion"], step.kind)
        blocks.append(section(step.kind, step.obj, revision_of(kind, step.obj) if kind else ""))
        step = next((c for c in step.children if c.relation in ("source", "chart", "chartRef")), None)
    blocks += [section(kind.kind, found, revision_of(kind, found)) for kind, found in image_steps(a.kube, obj)]
    for i, block in enumerate(blocks):
        if i:
            a.terminal.line("---")
        width = max(len(label) for label, _ in block) + 2
        for label, value in block:
            a.terminal.line(f"{label + ':':<{width}}{value}")
