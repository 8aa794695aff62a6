"""Source outages and hanging servers (issue 14, item 3): the Git server, the OCI registry, the Helm chart
repository and the S3 server each feed a workload (three Kustomizations and a HelmRelease) through fluxpy's
own source reconcilers, all in-process on the test namespace.

- **Outage**: every server is stopped (connections refused) for :data:`OUTAGE` seconds, then started again on
  the same port. Each source must turn Ready=False with its reason and a message naming the server's
  address; the workloads must not change at all (no object written, no Helm release revision, the consumers
  still Ready at the same revision) although they re-run every 2 s; and each source must be Ready again by
  itself within one retry interval (the source controllers' ``max_retry_delay``) of its server's return.
- **Hang**: every server is paused (SIGSTOP for the processes; in-process servers hold their requests), so
  connections are accepted and never answered. A reconciliation of each source must end at its
  ``spec.timeout`` with Ready=False, and the next object of the same controller (one worker each), a source
  on a healthy server, must be reconciled right after: no worker is held longer than the timeout.

Figures: outages and hangs survived, workload changes (must be 0), recovery times, how long a hanging server
holds a worker. Short: a 5 s outage; full (``make faults``): a minute.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import pytest

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.helm import HELM_RELEASE
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.api.source import BUCKET, GIT_REPOSITORY, HELM_REPOSITORY, OCI_REPOSITORY
from controllers.api.types import Kind
from controllers.runtime.kube import NotFound
from servers.git import GitHTTPServer, artifact_storage, git_server  # noqa: F401 - fixtures
from servers.helmrepo import HelmRepoServer, helm_repo, make_chart  # noqa: F401 - fixtures
from servers.objects import apply_secret, apply_source
from servers.registry import Registry, registry  # noqa: F401 - fixture
from servers.s3 import S3Server, s3_server  # noqa: F401 - fixture
from servers.waiting import handled, ready_with, request_reconcile, until, wait

from .conftest import record, scale, start_source_controllers

#: seconds each server stays down in the outage test
OUTAGE = scale(5.0, 60.0)
#: every source's spec.timeout in the hang test
SOURCE_TIMEOUT = 2.0
#: the source controllers' longest back-off: "one retry interval" of a failing source
MAX_RETRY_DELAY = 2.0
#: what a reconciliation itself may take on a loaded 2-CPU machine, on top of the bounds above
SLACK = 8.0
#: how much longer than spec.timeout a hung reconciliation may hold its worker (status writes, a busy machine)
HOLD_SLACK = 2.0
#: the sources' and consumers' interval: they keep running through the outage
INTERVAL = "2s"
WAIT = 60.0


# --------------------------------------------------------------------------- one source kind, its server, its workload

@dataclasses.dataclass
class Pipeline:
    """A source of ``kind`` on ``server``, and the consumer (a Kustomization or a HelmRelease) of it."""

    kind: Kind
    name: str
    server: object
    """has ``stop()``/``start()`` (the same port again) and ``pause()``/``resume()``"""
    address: str
    """``host:port`` of the server, as a failure message must name it"""
    reason: str
    """the source's Ready=False reason when its server is unreachable"""
    consumer: Kind
    publish: Callable[[int], None]
    """publishes generation ``n`` of the workload (one ConfigMap ``<name>-cm`` holding ``n``)"""


def workload(name: str, generation: int) -> dict[str, str]:
    return {"cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-cm\n"
                       f"data:\n  generation: '{generation}'\n"}


def git_pipeline(kube, namespace: str, server: GitHTTPServer, name: str) -> Pipeline:
    repo = server.repo(name)
    apply_source(kube, GIT_REPOSITORY, namespace, name, {"url": server.url(repo), "interval": INTERVAL,
                                                         "timeout": f"{SOURCE_TIMEOUT}s", "ref": {"branch": "main"}})
    return Pipeline(GIT_REPOSITORY, name, server, f"127.0.0.1:{server.port}", "GitOperationFailed", KUSTOMIZATION,
                    lambda n: repo.commit(workload(name, n), f"generation {n}"))


def oci_pipeline(kube, namespace: str, server: Registry, name: str) -> Pipeline:
    repository = server.new_repository(name)
    apply_source(kube, OCI_REPOSITORY, namespace, name, {"url": server.url(repository), "interval": INTERVAL,
                                                         "timeout": f"{SOURCE_TIMEOUT}s"})
    return Pipeline(OCI_REPOSITORY, name, server, server.host, "OCIArtifactPullFailed", KUSTOMIZATION,
                    lambda n: server.push(repository, "latest", workload(name, n)))


def bucket_pipeline(kube, namespace: str, server: S3Server, name: str) -> Pipeline:
    bucket = server.make_bucket()
    apply_secret(kube, namespace, f"{name}-creds", server.secret_data())
    apply_source(kube, BUCKET, namespace, name, {"bucketName": bucket, "endpoint": server.endpoint, "insecure": True,
                                                 "interval": INTERVAL, "timeout": f"{SOURCE_TIMEOUT}s",
                                                 "secretRef": {"name": f"{name}-creds"}})
    return Pipeline(BUCKET, name, server, server.endpoint, "BucketOperationFailed", KUSTOMIZATION,
                    lambda n: server.put(bucket, workload(name, n)))


def helm_pipeline(kube, namespace: str, server: HelmRepoServer, name: str, charts) -> Pipeline:
    apply_source(kube, HELM_REPOSITORY, namespace, name, {"url": server.url, "interval": INTERVAL,
                                                          "timeout": f"{SOURCE_TIMEOUT}s"})

    def publish(n: int) -> None:
        server.add_chart(make_chart(charts / f"{name}-{n}", name, f"1.0.{n}", values={"generation": n}))
    return Pipeline(HELM_REPOSITORY, name, server, f"127.0.0.1:{server.port}", "Failed", HELM_RELEASE,
                    publish)


def consume(kube, namespace: str, pipeline: Pipeline) -> None:
    """The pipeline's consumer, re-running every :data:`INTERVAL`."""
    if pipeline.consumer is KUSTOMIZATION:
        apply_source(kube, KUSTOMIZATION, namespace, pipeline.name, {
            "interval": INTERVAL, "path": "./", "prune": True, "targetNamespace": namespace,
            "sourceRef": {"kind": pipeline.kind.kind, "name": pipeline.name}})
    else:
        apply_source(kube, HELM_RELEASE, namespace, pipeline.name, {
            "interval": INTERVAL, "chart": {"spec": {"chart": pipeline.name, "version": "*", "interval": INTERVAL,
                                                     "sourceRef": {"kind": "HelmRepository", "name": pipeline.name}}}})


def applied(kube, namespace: str, pipeline: Pipeline, generation: int) -> bool:
    """Whether the consumer is Ready with generation ``generation`` of the workload live."""
    consumer = kube.get(pipeline.consumer, pipeline.name, namespace)
    if not ready_with("True")(consumer):
        return False
    helm = pipeline.consumer is HELM_RELEASE
    try:
        cm = kube.get(CONFIGMAP, f"{pipeline.name}-{pipeline.name}" if helm else f"{pipeline.name}-cm", namespace)
    except NotFound:
        return False
    if helm:
        return f'"generation":{generation}' in cm["data"]["values"].replace(" ", "")
    return cm["data"]["generation"] == str(generation)


def workload_state(kube, namespace: str, pipelines: list[Pipeline]) -> dict[str, str]:
    """What a source outage must not change: every ConfigMap and Helm release Secret (by resourceVersion) and
    each consumer's applied revision."""
    state = {f"ConfigMap/{c['metadata']['name']}": c["metadata"]["resourceVersion"]
             for c in kube.list(CONFIGMAP, namespace)["items"] if c["metadata"]["name"] != "kube-root-ca.crt"}
    state |= {f"Secret/{s['metadata']['name']}": s["metadata"]["resourceVersion"]
              for s in kube.list(SECRET, namespace, label_selector="owner=helm")["items"]}
    for p in pipelines:
        consumer = kube.get(p.consumer, p.name, namespace)
        state[f"{p.consumer.kind}/{p.name}"] = (dig(consumer, "status.lastAppliedRevision")
                                                or dig(consumer, "status.lastAttemptedRevision"))
    return state


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def failing_with(reason: str, *fragments: str):
    """A predicate: Ready=False with ``reason`` and a message holding every fragment."""
    def check(obj: dict) -> bool:
        ready = find_condition(obj, "Ready") or {}
        return (ready.get("status") == "False" and ready.get("reason") == reason
                and all(f in ready.get("message", "") for f in fragments))
    return check


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def sources_stack(kube, namespace, flux_crds, artifact_storage, start_controller):
    """fluxpy's source reconcilers (one worker each), the Kustomization and HelmRelease reconcilers."""
    from controllers.helm.reconciler import HelmReleaseReconciler
    from controllers.helm.reconciler import Options as HelmOptions
    from controllers.kustomize.reconciler import KustomizationReconciler
    from controllers.kustomize.reconciler import Options as KustomizeOptions

    start_source_controllers(start_controller, artifact_storage, namespace, concurrent=1,
                             max_retry_delay=MAX_RETRY_DELAY)
    start_controller(HelmReleaseReconciler(HelmOptions(health_interval=0.5)), namespace)
    start_controller(KustomizationReconciler(KustomizeOptions(health_interval=0.5, min_timeout=5.0)), namespace)


@pytest.fixture
def own_servers(tmp_path):
    """A Git server, a registry, an S3 server and a chart repository of this test's own (it stops them)."""
    servers = [GitHTTPServer(tmp_path / "git").start(), Registry(tmp_path / "registry").start(),
               S3Server(tmp_path / "s3").start(), HelmRepoServer(tmp_path / "charts").start()]
    try:
        yield servers
    finally:
        for server in servers:
            server.resume()
            server.stop()


def pipelines_on(kube, namespace: str, servers, tmp_path, prefix: str) -> list[Pipeline]:
    """One pipeline per server (git, registry, S3, chart repository), published at generation 0 and consumed."""
    git_, registry_, s3_, charts = servers
    pipelines = [git_pipeline(kube, namespace, git_, f"{prefix}git"),
                 oci_pipeline(kube, namespace, registry_, f"{prefix}oci"),
                 bucket_pipeline(kube, namespace, s3_, f"{prefix}bucket"),
                 helm_pipeline(kube, namespace, charts, f"{prefix}helm", tmp_path / "chart-src")]
    for p in pipelines:
        p.publish(0)
        consume(kube, namespace, p)
    return pipelines


def all_applied(kube, namespace: str, pipelines: list[Pipeline], generation: int) -> None:
    until(lambda: all(applied(kube, namespace, p, generation) for p in pipelines),
          f"every workload at generation {generation}", timeout=WAIT * 2)


def ready_again(kube, namespace: str, pipelines: list[Pipeline], since: float, figure: str) -> None:
    """Each source Ready again within one retry interval (plus :data:`SLACK`) of its server's return."""
    for p in pipelines:
        wait(kube, p.kind, namespace, p.name, ready_with("True"), f"{p.kind.kind} {p.name} recovers", WAIT)
        took = time.monotonic() - since
        record(figure, took)
        assert took <= MAX_RETRY_DELAY + SLACK, f"{p.kind.kind} {p.name} recovered only {took:.1f}s after its server"


# --------------------------------------------------------------------------- the tests

def test_a_source_outage_changes_no_workload_and_recovers_by_itself(kube, namespace, sources_stack, own_servers,
                                                                    tmp_path):
    pipelines = pipelines_on(kube, namespace, own_servers, tmp_path, "")
    all_applied(kube, namespace, pipelines, 0)
    before = workload_state(kube, namespace, pipelines)

    for server in own_servers:
        server.stop()
    down = time.monotonic()
    for p in pipelines:
        failed = wait(kube, p.kind, namespace, p.name, failing_with(p.reason, p.address),
                      f"{p.kind.kind} {p.name} Ready=False {p.reason} naming {p.address}", WAIT)
        print(f"outage: {p.kind.kind} {p.name}: {find_condition(failed, 'Ready')['message']}")
        assert dig(failed, "status.artifact"), f"{p.kind.kind} {p.name} lost its artifact in the outage"
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))  # the consumers re-run meanwhile, every 2 s
    during = changes(before, workload_state(kube, namespace, pipelines))
    for p in pipelines:
        assert ready_with("True")(kube.get(p.consumer, p.name, namespace)), f"{p.consumer.kind} {p.name} not Ready"

    for server in own_servers:
        server.start()
    ready_again(kube, namespace, pipelines, time.monotonic(), "time to recover after a source outage")
    record("workload changes during source outages", len(during))
    assert not during, f"the outage changed workloads: {during}"

    for p in pipelines:  # and the pipelines deliver again
        p.publish(1)
    all_applied(kube, namespace, pipelines, 1)
    record("source outages survived / tried", (len(pipelines), len(pipelines)))


def test_a_hanging_server_holds_a_worker_no_longer_than_spec_timeout(kube, namespace, sources_stack, own_servers,
                                                                     git_server, registry, s3_server, helm_repo,
                                                                     tmp_path):
    hanging = pipelines_on(kube, namespace, own_servers, tmp_path, "")
    healthy = pipelines_on(kube, namespace, [git_server, registry, s3_server, helm_repo], tmp_path, "ok-")
    all_applied(kube, namespace, hanging + healthy, 0)
    for p in hanging + healthy:  # no periodic run in flight when a request comes: each is timed alone
        kube.patch(p.kind, p.name, {"spec": {"interval": "10m"}}, namespace)
        wait(kube, p.kind, namespace, p.name, ready_with("True"), f"{p.kind.kind} {p.name} on a 10m interval", WAIT)
    before = workload_state(kube, namespace, hanging)

    for server in own_servers:
        server.pause()
    try:
        for stuck, next_one in zip(hanging, healthy):
            began = time.monotonic()
            stuck_token = request_reconcile(kube, stuck.kind, namespace, stuck.name)
            next_token = request_reconcile(kube, next_one.kind, namespace, next_one.name)
            failed = wait(kube, stuck.kind, namespace, stuck.name, handled(stuck_token, ready_with("False")),
                          f"{stuck.kind.kind} {stuck.name} cut off at its timeout", WAIT)
            held = time.monotonic() - began
            wait(kube, next_one.kind, namespace, next_one.name, handled(next_token, ready_with("True")),
                 f"{next_one.kind.kind} {next_one.name} reconciled after the hung one", WAIT)
            freed = time.monotonic() - began
            message = find_condition(failed, "Ready")["message"]
            print(f"hang: {stuck.kind.kind} {stuck.name} after {held:.1f}s: {message}")
            record("time a hanging server holds a worker", held)
            assert SOURCE_TIMEOUT <= held <= SOURCE_TIMEOUT + HOLD_SLACK, \
                f"{stuck.kind.kind} {stuck.name} held its worker {held:.1f}s (spec.timeout {SOURCE_TIMEOUT}s)"
            assert freed <= SOURCE_TIMEOUT + SLACK, f"the next {next_one.kind.kind} waited {freed:.1f}s"
            assert stuck.address in message, f"the message does not name the server: {message}"
        during = changes(before, workload_state(kube, namespace, hanging))
    finally:
        for server in own_servers:
            server.resume()
    ready_again(kube, namespace, hanging, time.monotonic(), "time to recover after a hanging server")
    record("workload changes during hanging servers", len(during))
    assert not during, f"the hanging servers changed workloads: {during}"
    record("hanging servers cut off at spec.timeout / tried", (len(hanging), len(hanging)))
