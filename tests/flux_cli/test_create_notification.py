"""``fluxpy create alert-provider | alert | receiver``: flux's flags, messages and --export output (the golden
files of test_golden_output.py hold the byte-for-byte YAML), and the flow against the control plane with the
real Receiver reconciler."""
from __future__ import annotations

import hashlib

import pytest
import yaml

import flux_cli.commands.create_notification  # noqa: F401 - registers the commands
from controllers.api.notification import ALERT, PROVIDER, RECEIVER
from controllers.api.objects import dig
from servers.objects import apply_secret


@pytest.mark.parametrize("args, message", [
    (["alert-provider", "p"], "Provider type is required"),
    (["alert-provider", "p", "--type", "carrier-pigeon"], "invalid --type 'carrier-pigeon': expected one of"),
    (["alert", "a", "--event-source", "Kustomization/x"], "provider ref is required"),
    (["alert", "a", "--provider-ref", "p"], "at least one event source is required"),
    (["alert", "a", "--provider-ref", "p", "--event-source", "apps"],
     "invalid event source 'apps', must be in format <kind>/<name>"),
    (["alert", "a", "--provider-ref", "p", "--event-source", "Kustomization/x", "--event-severity", "warn"],
     "invalid --event-severity 'warn': expected info or error"),
    (["receiver", "r", "--secret-ref", "t", "--resource", "GitRepository/x"], "Receiver type is required"),
    (["receiver", "r", "--type", "github", "--resource", "GitRepository/x"], "secret ref is required"),
    (["receiver", "r", "--type", "github", "--secret-ref", "t"], "atleast one resource is required"),
])
def test_bad_input_is_one_message(fluxpy, args, message):
    res = fluxpy("create", *args, "--export")
    assert res.exit_code != 0
    assert message in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert res.stdout == ""


def test_export_alert_with_cross_namespace_sources(fluxpy):
    res = fluxpy("create", "alert", "ops", "--provider-ref", "slack", "--event-source",
                 "HelmRelease/*.apps", "--event-source", "Kustomization/infra", "-n", "flux-system", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout)["spec"] == {
        "eventSources": [{"kind": "HelmRelease", "name": "*", "namespace": "apps"},
                         {"kind": "Kustomization", "name": "infra"}],
        "providerRef": {"name": "slack"}}


def test_create_provider_alert_and_receiver_in_the_cluster(fluxpy, kube, namespace, control_plane, flux_crds,
                                                           start_controller):
    from controllers.notification.reconciler import Options, ReceiverReconciler

    common = ("-n", namespace, "--kubeconfig", str(control_plane.kubeconfig), "--timeout", "60s")
    res = fluxpy("create", "alert-provider", "hook", "--type", "generic", "--address", "http://127.0.0.1:1/",
                 *common)
    assert res.exit_code == 0, res.stderr
    assert "Provider created" in res.stderr and "Provider hook is ready" in res.stderr
    assert dig(kube.get(PROVIDER, "hook", namespace), "spec.type") == "generic"
    res = fluxpy("create", "alert", "all", "--provider-ref", "hook", "--event-source", "Kustomization/*", *common)
    assert res.exit_code == 0, res.stderr
    assert dig(kube.get(ALERT, "all", namespace), "spec.eventSources") == [{"kind": "Kustomization", "name": "*"}]

    start_controller(ReceiverReconciler(Options(events_addr="127.0.0.1:0", receiver_addr="127.0.0.1:0")), namespace)
    apply_secret(kube, namespace, "webhook-token", {"token": "tok"})
    res = fluxpy("create", "receiver", "push", "--type", "github", "--event", "push", "--secret-ref",
                 "webhook-token", "--resource", "GitRepository/app", *common)
    assert res.exit_code == 0, res.stderr
    path = "/hook/" + hashlib.sha256(f"tokpush{namespace}".encode()).hexdigest()
    assert f"generated webhook URL {path}" in res.stderr
    assert dig(kube.get(RECEIVER, "push", namespace), "status.webhookPath") == path
