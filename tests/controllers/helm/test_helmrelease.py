"""The helm-controller against the real apiserver, the real helm and kustomize, charts served on loopback by a
Helm repository and fetched by fluxpy's own HelmRepository/HelmChart reconcilers (artifacts in a real
Storage served over HTTP).

Covers install (the generated HelmChart, Helm's storage read by the real ``helm``), upgrade on new values and on
a new chart version, a failing upgrade remediated by rollback, install failures stalled after their retries
and recovered by ``--reset``, test hooks (the test patches the test Pod's phase: there is no kubelet), drift
corrected and drift warned, a pending release unlocked, targetNamespace != storageNamespace, valuesFrom with
targetPath, post-renderer patches, CRD policies, impersonation denied by RBAC, a release made by ``helm
install`` taken over, and uninstall on delete.
"""
from __future__ import annotations

import json
import time

import pytest
import yaml

from controllers.api.builtin import CONFIGMAP, NAMESPACE, POD
from controllers.api.helm import HELM_RELEASE
from controllers.api.objects import dig, find_condition
from controllers.api.source import HELM_CHART, HELM_REPOSITORY
from controllers.lib.helm import HelmCLI
from controllers.lib.helm_release import release_name
from controllers.lib.helm_storage import ReleaseStorage, status_of
from controllers.runtime.kube import NotFound
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.helmrepo import helm_controllers, helm_repo, make_chart  # noqa: F401
from servers.objects import apply_source
from servers.waiting import events, reconcile_now, until, wait, wait_gone

pytestmark = pytest.mark.integration
WAIT = 60.0


def publish(helm_repo, tmp_path, name: str = "podinfo", version: str = "6.0.0", **kwargs):
    chart = make_chart(tmp_path / f"src-{version}", name, version, **kwargs)
    helm_repo.add_chart(chart)
    return chart


def helmrelease(kube, namespace: str, name: str = "podinfo", *, chart: str = "podinfo", version: str = "*",
                **spec) -> dict:
    body = {"interval": "10m", "chart": {"spec": {"chart": chart, "version": version,
                                                  "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}
    body.update(spec)
    return apply_source(kube, HELM_RELEASE, namespace, name, body)


def repository(kube, namespace: str, helm_repo) -> None:
    apply_source(kube, HELM_REPOSITORY, namespace, "charts", {"url": helm_repo.url, "interval": "10m"})


def ready(kube, namespace: str, name: str = "podinfo", status: str = "True", reason: str | None = None,
          timeout: float = WAIT) -> dict:
    def check(obj: dict) -> bool:
        ready_ = find_condition(obj, "Ready") or {}
        return (ready_.get("status") == status and (reason is None or ready_.get("reason") == reason)
                and (ready_.get("observedGeneration") == dig(obj, "metadata.generation"))
                and not (status == "True" and find_condition(obj, "Reconciling")))
    return wait(kube, HELM_RELEASE, namespace, name, check, f"HelmRelease {name} Ready={status} {reason or ''}",
                timeout)


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"].get("conditions") or []}


def configmap_values(kube, namespace: str, name: str) -> dict:
    return json.loads(kube.get(CONFIGMAP, name, namespace)["data"]["values"])


def event_reasons(kube, namespace: str, name: str = "podinfo") -> list[str]:
    return [e["reason"] for e in events(kube, namespace, name, "HelmRelease")]


def helm(kubeconfig, namespace: str, *args: str) -> str:
    with HelmCLI(60) as cli:
        return cli.run(*args, "--namespace", namespace, "--kubeconfig", str(kubeconfig))


# --------------------------------------------------------------------------- install, upgrade, uninstall


def test_install_upgrade_and_uninstall(kube, kubeconfig, namespace, helm_controllers, helm_repo, tmp_path):
    publish(helm_repo, tmp_path, version="6.0.0")
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, values={"message": "first"})
    obj = ready(kube, namespace, reason="InstallSucceeded")

    assert find_condition(obj, "Ready")["message"] == (f"Helm install succeeded for release {namespace}/podinfo.v1 "
                                                       "with chart podinfo@6.0.0")
    assert conditions(obj)["Released"] == ("True", "InstallSucceeded")
    status = obj["status"]
    assert status["helmChart"] == f"{namespace}/{namespace}-podinfo"
    assert status["storageNamespace"] == namespace and status["lastAttemptedRevision"] == "6.0.0"
    assert status["lastAttemptedReleaseAction"] == "install"
    (snapshot,) = status["history"]
    assert (snapshot["name"], snapshot["version"], snapshot["status"], snapshot["chartVersion"]) == (
        "podinfo", 1, "deployed", "6.0.0")
    assert snapshot["configDigest"] == status["lastAttemptedConfigDigest"]
    chart = kube.get(HELM_CHART, f"{namespace}-podinfo", namespace)
    assert chart["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "podinfo"
    assert chart["spec"]["sourceRef"] == {"kind": "HelmRepository", "name": "charts"}

    cm = kube.get(CONFIGMAP, "podinfo-podinfo", namespace)
    assert json.loads(cm["data"]["values"])["message"] == "first"
    assert cm["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "podinfo"
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert cm["metadata"]["annotations"]["meta.helm.sh/release-name"] == "podinfo"
    listed = json.loads(helm(kubeconfig, namespace, "list", "-o", "json"))
    assert [(r["name"], r["status"], r["chart"]) for r in listed] == [("podinfo", "deployed", "podinfo-6.0.0")]
    assert json.loads(helm(kubeconfig, namespace, "get", "values", "podinfo", "-o", "json")) == {"message": "first"}
    installed = [e for e in events(kube, namespace, "podinfo", "HelmRelease") if e["reason"] == "InstallSucceeded"]
    assert installed and installed[0]["metadata"]["annotations"]["helm.toolkit.fluxcd.io/revision"] == "6.0.0"
    assert installed[0]["metadata"]["annotations"]["helm.toolkit.fluxcd.io/token"] == snapshot["configDigest"]

    # new values: an upgrade to revision 2
    helmrelease(kube, namespace, values={"message": "second"})
    obj = ready(kube, namespace, reason="UpgradeSucceeded")
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "second"
    assert [s["version"] for s in obj["status"]["history"]] == [2, 1]
    assert [s["status"] for s in obj["status"]["history"]] == ["deployed", "superseded"]

    # a new chart version in the repository: the HelmChart follows, the release upgrades
    publish(helm_repo, tmp_path, version="6.1.0", values={"message": "default", "extra": "yes"})
    reconcile_now(kube, HELM_REPOSITORY, namespace, "charts")
    obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
               lambda o: dig(o, "status.history") and o["status"]["history"][0]["chartVersion"] == "6.1.0"
               and (find_condition(o, "Ready") or {}).get("status") == "True", "upgrade to 6.1.0")
    assert configmap_values(kube, namespace, "podinfo-podinfo") == {"message": "second", "extra": "yes"}
    history = json.loads(helm(kubeconfig, namespace, "history", "podinfo", "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    kube.delete(HELM_RELEASE, "podinfo", namespace)
    wait_gone(kube, HELM_RELEASE, namespace, "podinfo")
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "podinfo-podinfo", namespace)
    assert ReleaseStorage(kube, namespace).history("podinfo") == []
    with pytest.raises(NotFound):
        kube.get(HELM_CHART, f"{namespace}-podinfo", namespace)


def test_target_and_storage_namespaces_with_values_from(kube, kubeconfig, namespace, helm_controllers, helm_repo,
                                                        tmp_path):
    target = f"{namespace}-apps"
    publish(helm_repo, tmp_path)
    repository(kube, namespace, helm_repo)
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "base", "namespace": namespace},
                            "data": {"values.yaml": "message: from-configmap\nreplicas: 2\n", "color": "blue"}},
                namespace)
    helmrelease(kube, namespace, targetNamespace=target, storageNamespace=namespace,
                install={"createNamespace": True},
                valuesFrom=[{"kind": "ConfigMap", "name": "base"},
                            {"kind": "ConfigMap", "name": "base", "valuesKey": "color", "targetPath": "ui.color"},
                            {"kind": "Secret", "name": "absent", "optional": True}],
                values={"replicas": 3})
    try:
        obj = ready(kube, namespace, reason="InstallSucceeded")
        name = release_name(obj)
        assert len(name) <= 53 and name.startswith(target[:30])
        assert obj["status"]["history"][0]["name"] == name and obj["status"]["history"][0]["namespace"] == target
        assert configmap_values(kube, target, f"{name}-podinfo") == {
            "message": "from-configmap", "replicas": 3, "ui": {"color": "blue"}}
        # storage in the HelmRelease's namespace, resources in the target namespace: the real helm reads it
        (revision,) = ReleaseStorage(kube, namespace).history(name)
        assert revision["namespace"] == target and status_of(revision) == "deployed"
        assert ReleaseStorage(kube, target).history(name) == []
        assert json.loads(helm(kubeconfig, namespace, "get", "values", name, "-o", "json"))["ui"] == {"color": "blue"}
    finally:
        kube.delete(HELM_RELEASE, "podinfo", namespace)
        wait_gone(kube, HELM_RELEASE, namespace, "podinfo")
        try:
            kube.delete(NAMESPACE, target)
        except NotFound:
            pass


def test_a_missing_values_object_and_a_template_error_apply_nothing(kube, namespace, helm_controllers, helm_repo,
                                                                     tmp_path):
    publish(helm_repo, tmp_path, files={"templates/bad.yaml": "{{ if .Values.fail }}{{ .Values.missing.key }}{{ end }}"})
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, valuesFrom=[{"kind": "Secret", "name": "absent"}])
    obj = ready(kube, namespace, status="False", reason="ValuesError")
    assert find_condition(obj, "Ready")["message"] == (f"could not resolve Secret chart values reference "
                                                       f"'{namespace}/absent' with key 'values.yaml': secrets "
                                                       f"\"absent\" not found")
    assert "history" not in obj["status"]

    helmrelease(kube, namespace, values={"fail": True})
    obj = ready(kube, namespace, status="False", reason="InstallFailed")
    message = find_condition(obj, "Ready")["message"]
    assert message.startswith(f"Helm install failed for release {namespace}/podinfo with chart podinfo@6.0.0: ")
    assert "nil pointer evaluating interface {}.key" in message and "Traceback" not in message
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "podinfo-podinfo", namespace)
    assert ReleaseStorage(kube, namespace).history("podinfo") == []

    helmrelease(kube, namespace, values={"fail": False})
    ready(kube, namespace, reason="InstallSucceeded")


# --------------------------------------------------------------------------- remediation


HOOK_FAIL = """\
{{- if .Values.failHook }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-pre-upgrade
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  restartPolicy: Never
  containers:
  - name: hook
    image: busybox
{{- end }}
"""


class PodPhase:
    """Plays the kubelet for one hook Pod: whenever it exists in another phase, set it to ``phase``."""

    def __init__(self, kube, namespace: str, name: str, phase: str):
        import threading

        self.kube, self.namespace, self.name, self.phase = kube, namespace, name, phase
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PodPhase":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            pod = _existing(self.kube, POD, self.namespace, self.name)
            if pod is not None and dig(pod, "status.phase") != self.phase:
                try:
                    self.kube.patch(POD, self.name, {"status": {"phase": self.phase}}, self.namespace,
                                    subresource="status")
                except Exception:  # noqa: BLE001 - deleted meanwhile: the next one is patched
                    pass


def _existing(kube, rt, namespace: str, name: str) -> dict | None:
    try:
        return kube.get(rt, name, namespace)
    except NotFound:
        return None


def test_failed_upgrade_is_rolled_back_then_stalls(kube, kubeconfig, namespace, helm_controllers, helm_repo,
                                                   tmp_path):
    publish(helm_repo, tmp_path, files={"templates/hook.yaml": HOOK_FAIL})
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, values={"message": "good"}, timeout="20s",
                upgrade={"remediation": {"retries": 1}})
    ready(kube, namespace, reason="InstallSucceeded")

    helmrelease(kube, namespace, values={"message": "bad", "failHook": True}, timeout="20s",
                upgrade={"remediation": {"retries": 1}})
    with PodPhase(kube, namespace, "podinfo-pre-upgrade", "Failed"):  # the upgrade and its one retry fail
        obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
                   lambda o: (find_condition(o, "Stalled") or {}).get("reason") == "RetriesExceeded", "stalled", WAIT)
    assert find_condition(obj, "Stalled")["message"] == "Failed to upgrade after 2 attempt(s)"
    assert conditions(obj)["Remediated"] == ("True", "RollbackSucceeded")
    assert conditions(obj)["Ready"][0] == "False"
    assert obj["status"]["upgradeFailures"] == 2
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "good"  # rolled back
    history = json.loads(helm(kubeconfig, namespace, "history", "podinfo", "-o", "json"))
    assert history[-1]["status"] == "deployed" and history[-1]["description"].startswith("Rollback to ")
    assert "failed" in [h["status"] for h in history]  # the failed upgrades stay in Helm's history
    reasons = event_reasons(kube, namespace)
    assert "UpgradeFailed" in reasons and "RollbackSucceeded" in reasons

    # the hook is fixed by hand (the pod will succeed) and --reset clears the exhausted retries
    token = str(time.time())
    kube.patch(HELM_RELEASE, "podinfo", {"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": token, "reconcile.fluxcd.io/resetAt": token}}}, namespace)
    with PodPhase(kube, namespace, "podinfo-pre-upgrade", "Succeeded"):
        obj = ready(kube, namespace, reason="UpgradeSucceeded")
    assert obj["status"]["lastHandledResetAt"] == token
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "bad"
    assert "ResetRequested" in event_reasons(kube, namespace)


def test_install_failure_is_uninstalled_and_stalls(kube, namespace, helm_controllers, helm_repo, tmp_path):
    bad = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-bad\ndata:\n"
           "  {{ if .Values.invalid }}\"not a valid key!\": x{{ else }}ok: x{{ end }}\n")
    publish(helm_repo, tmp_path, files={"templates/bad.yaml": bad})
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, values={"invalid": True}, install={"remediation": {"retries": 1}})
    obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
               lambda o: (find_condition(o, "Stalled") or {}).get("reason") == "RetriesExceeded", "stalled", WAIT)
    assert find_condition(obj, "Stalled")["message"] == "Failed to install after 2 attempt(s)"
    assert obj["status"]["installFailures"] == 2
    released = find_condition(obj, "Released")
    assert released["reason"] == "InstallFailed" and "dry-run failed (Invalid)" in released["message"]
    assert find_condition(obj, "Ready")["reason"] == "InstallFailed"
    assert event_reasons(kube, namespace).count("UninstallSucceeded") >= 1  # the first failure was uninstalled
    # the last failure is kept (install remediation does not remediate the last failure by default), and
    # the dry run refused the whole set: nothing of the release was applied
    (kept,) = ReleaseStorage(kube, namespace).history("podinfo")
    assert status_of(kept) == "failed"
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "podinfo-podinfo", namespace)

    helmrelease(kube, namespace, values={"invalid": False}, install={"remediation": {"retries": 1}})
    obj = ready(kube, namespace, reason="UpgradeSucceeded")
    assert "installFailures" not in obj["status"] and "Stalled" not in conditions(obj)


# --------------------------------------------------------------------------- tests, drift, unlock, take-over


TEST_HOOK = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
spec:
  restartPolicy: Never
  containers:
  - name: test
    image: busybox
"""


def test_test_hooks_pass_and_fail(kube, namespace, helm_controllers, helm_repo, tmp_path):
    publish(helm_repo, tmp_path, files={"templates/tests/test.yaml": TEST_HOOK})
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, test={"enable": True}, timeout="30s")
    with PodPhase(kube, namespace, "podinfo-test", "Succeeded"):
        obj = ready(kube, namespace, reason="TestSucceeded")
    assert find_condition(obj, "Ready")["message"] == (f"Helm test succeeded for release {namespace}/podinfo.v1 "
                                                       "with chart podinfo@6.0.0: 1 test hook completed successfully")
    assert obj["status"]["history"][0]["testHooks"]["podinfo-test"]["phase"] == "Succeeded"

    helmrelease(kube, namespace, test={"enable": True}, timeout="30s", values={"message": "again"})
    with PodPhase(kube, namespace, "podinfo-test", "Failed"):
        obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
                   lambda o: (find_condition(o, "TestSuccess") or {}).get("reason") == "TestFailed", "test failed",
                   WAIT)
    assert "pod podinfo-test failed" in find_condition(obj, "TestSuccess")["message"]
    obj = wait(kube, HELM_RELEASE, namespace, "podinfo", lambda o: find_condition(o, "Stalled"), "stalled", WAIT)
    # no upgrade remediation retries: stalled, and Ready says why (the failed test)
    assert conditions(obj)["Stalled"] == ("True", "RetriesExceeded")
    assert conditions(obj)["Ready"] == ("False", "TestFailed")


def test_drift_is_corrected_or_warned(kube, namespace, helm_controllers, helm_repo, tmp_path):
    publish(helm_repo, tmp_path)
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, driftDetection={"mode": "enabled"})
    ready(kube, namespace, reason="InstallSucceeded")
    kube.patch(CONFIGMAP, "podinfo-podinfo", {"data": {"values": "tampered"}}, namespace)
    reconcile_now(kube, HELM_RELEASE, namespace, "podinfo")
    until(lambda: kube.get(CONFIGMAP, "podinfo-podinfo", namespace)["data"]["values"] != "tampered",
          "drift corrected", WAIT)
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "hello"
    reasons = event_reasons(kube, namespace)
    assert "DriftDetected" in reasons and "DriftCorrected" in reasons
    obj = ready(kube, namespace)
    assert conditions(obj)["Drifted"] == ("False", "NoDriftDetected")

    # warn: detected and shown, not corrected; deleted objects count too
    helmrelease(kube, namespace, driftDetection={"mode": "warn"})
    ready(kube, namespace)
    kube.delete(CONFIGMAP, "podinfo-podinfo", namespace)
    reconcile_now(kube, HELM_RELEASE, namespace, "podinfo")
    obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
               lambda o: (find_condition(o, "Drifted") or {}).get("status") == "True", "drift warned", WAIT)
    assert f"ConfigMap/{namespace}/podinfo-podinfo removed" in find_condition(obj, "Drifted")["message"]
    assert _existing(kube, CONFIGMAP, namespace, "podinfo-podinfo") is None


def test_pending_release_is_unlocked_and_recovers(kube, namespace, helm_controllers, helm_repo, tmp_path):
    publish(helm_repo, tmp_path)
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace)
    ready(kube, namespace, reason="InstallSucceeded")
    storage = ReleaseStorage(kube, namespace)
    latest = storage.latest("podinfo")  # a controller killed mid-upgrade leaves a pending revision
    stuck = dict(latest, version=2, info=dict(latest["info"], status="pending-upgrade"))
    storage.create(stuck)
    helmrelease(kube, namespace, values={"message": "after-unlock"})
    obj = ready(kube, namespace, reason="UpgradeSucceeded")
    assert "PendingRelease" in event_reasons(kube, namespace)
    assert status_of(storage.get("podinfo", 2)) in ("failed", "superseded")
    assert obj["status"]["history"][0]["version"] == 3
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "after-unlock"


def test_takes_over_a_release_made_by_helm_install(kube, kubeconfig, namespace, helm_controllers, helm_repo,
                                                   tmp_path):
    chart = publish(helm_repo, tmp_path)
    helm(kubeconfig, namespace, "install", "podinfo", str(chart), "--set", "message=by-hand")
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, values={"message": "by-fluxpy"})
    obj = ready(kube, namespace, reason="UpgradeSucceeded")
    assert obj["status"]["history"][0]["version"] == 2
    assert configmap_values(kube, namespace, "podinfo-podinfo")["message"] == "by-fluxpy"
    history = json.loads(helm(kubeconfig, namespace, "history", "podinfo", "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]


# --------------------------------------------------------------------------- post renderers, CRDs, tenancy


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{kind: {kind}, plural: {plural}, singular: {singular}, listKind: {kind}List}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_post_renderers_crds_and_common_metadata(kube, namespace, helm_controllers, helm_repo, tmp_path):
    group = f"{namespace}.fluxpy.test"
    crd = CRD.format(group=group, kind="Widget", plural="widgets", singular="widget")
    widget = f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {{{{ .Release.Name }}}}-widget\nspec: {{}}\n"
    publish(helm_repo, tmp_path, files={"crds/widgets.yaml": crd, "templates/widget.yaml": widget})
    repository(kube, namespace, helm_repo)
    patch = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "podinfo-podinfo"},
                            "data": {"patched": "yes"}})
    helmrelease(kube, namespace, postRenderers=[{"kustomize": {"patches": [{"patch": patch}]}}],
                commonMetadata={"labels": {"team": "platform"}})
    from controllers.api.builtin import CRD as CRD_KIND
    try:
        ready(kube, namespace, reason="InstallSucceeded")
        cm = kube.get(CONFIGMAP, "podinfo-podinfo", namespace)
        assert cm["data"]["patched"] == "yes" and cm["metadata"]["labels"]["team"] == "platform"
        assert kube.get(CRD_KIND, f"widgets.{group}")
        rt = kube.resource_for(f"{group}/v1", "Widget")
        assert kube.get(rt, "podinfo-widget", namespace)["metadata"]["labels"]["team"] == "platform"
        manifest = ReleaseStorage(kube, namespace).latest("podinfo")["manifest"]
        assert "patched: 'yes'" in manifest or "patched: yes" in manifest  # the stored manifest is post-rendered
    finally:
        kube.delete(HELM_RELEASE, "podinfo", namespace)
        wait_gone(kube, HELM_RELEASE, namespace, "podinfo")
        assert _existing(kube, CRD_KIND, f"widgets.{group}", None) is not None  # Helm never deletes crds/
        kube.delete(CRD_KIND, f"widgets.{group}")


def test_impersonation_is_denied_by_rbac(kube, namespace, helm_controllers, helm_repo, tmp_path):
    from controllers.api.builtin import SERVICE_ACCOUNT
    publish(helm_repo, tmp_path)
    repository(kube, namespace, helm_repo)
    kube.create(SERVICE_ACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount",
                                  "metadata": {"name": "tenant", "namespace": namespace}}, namespace)
    helmrelease(kube, namespace, serviceAccountName="tenant")
    obj = wait(kube, HELM_RELEASE, namespace, "podinfo",
               lambda o: "forbidden" in (find_condition(o, "Ready") or {}).get("message", ""), "denied", WAIT)
    message = find_condition(obj, "Ready")["message"]
    assert "forbidden" in message and f"system:serviceaccount:{namespace}:tenant" in message
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "podinfo-podinfo", namespace)


def test_a_periodic_run_in_sync_writes_nothing(kube, namespace, helm_controllers, helm_repo, tmp_path,
                                                      monkeypatch):
    """Beyond Flux: the periodic run of an in-sync release writes no status, reads the generated HelmChart from
    the cache and applies it only when the template changed or someone else changed it."""
    import threading

    publish(helm_repo, tmp_path)
    repository(kube, namespace, helm_repo)
    helmrelease(kube, namespace, interval="1s")
    ready(kube, namespace)
    chart_writes = []
    original = kube.request

    def request(method, path, **kw):
        if threading.current_thread().name.startswith("helmrelease-worker") and "/helmcharts" in path \
                and method != "GET":
            chart_writes.append((method, path))
        return original(method, path, **kw)
    monkeypatch.setattr(kube, "request", request)
    before = kube.get(HELM_RELEASE, "podinfo", namespace)["metadata"]["resourceVersion"]
    time.sleep(3.5)  # periodic runs
    assert chart_writes == []
    assert kube.get(HELM_RELEASE, "podinfo", namespace)["metadata"]["resourceVersion"] == before, "a status write"
    kube.patch(HELM_CHART, f"{namespace}-podinfo", {"spec": {"interval": "7m"}}, namespace)
    wait(kube, HELM_CHART, namespace, f"{namespace}-podinfo", lambda c: c["spec"]["interval"] == "1s",
         "the HelmChart re-applied", 15)
    assert chart_writes
