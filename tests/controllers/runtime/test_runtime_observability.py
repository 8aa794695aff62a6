"""Logs (JSON/console, levels, file), metrics text format and the HTTP endpoints; entrypoint flags."""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import pytest

from controllers import __main__ as entry
from controllers.components import COMPONENTS
from controllers.runtime import logs
from controllers.runtime.endpoints import EndpointServer, parse_addr, text
from controllers.runtime.leader import LeaderElector, lease_name
from controllers.runtime.metrics import Metrics


@pytest.fixture
def stream():
    buf = io.StringIO()
    yield buf
    logs.configure("info", "json", stream=io.StringIO())


def test_json_log_line_fields(stream):
    logs.configure("info", "json", stream=stream)
    log = logs.get_logger().with_values(controller="widget", kind="Widget", namespace="ns", name="w",
                                        reconcileID="123")
    log.info("Reconciliation finished in 1s", revision="main@sha1:abc")
    log.debug("hidden")
    line = json.loads(stream.getvalue().strip())
    assert line["level"] == "info" and line["msg"] == "Reconciliation finished in 1s"
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert line["controller"] == "widget" and line["kind"] == "Widget" and line["namespace"] == "ns"
    assert line["name"] == "w" and line["reconcileID"] == "123" and line["revision"] == "main@sha1:abc"
    assert len(stream.getvalue().strip().splitlines()) == 1


def test_error_logs_carry_error_and_logger_name(stream):
    logs.configure("debug", "json", stream=stream)
    logs.get_logger("setup").error("unable to start", error=ValueError("bad flag"))
    logs.get_logger("setup").debug("detail")
    first, second = [json.loads(x) for x in stream.getvalue().strip().splitlines()]
    assert first["level"] == "error" and first["logger"] == "setup" and first["error"] == "bad flag"
    assert second["level"] == "debug"


def test_trace_level(stream):
    logs.configure("trace", "json", stream=stream)
    logs.get_logger().trace("very detailed")
    assert json.loads(stream.getvalue())["level"] == "trace"


def test_console_encoding_and_log_file(stream, tmp_path):
    path = tmp_path / "controller.log"
    logs.configure("info", "console", file=str(path), stream=stream)
    logs.get_logger("setup").info("starting manager", component="kustomize-controller")
    out = stream.getvalue().strip()
    ts, level, name, msg, kv = out.split("\t")
    assert level == "INFO" and name == "setup" and msg == "starting manager"
    assert json.loads(kv) == {"component": "kustomize-controller"}
    logs.configure("info", "json", stream=io.StringIO())  # closes the file handler
    assert path.read_text().strip() == out


def test_invalid_log_settings_rejected():
    with pytest.raises(ValueError):
        logs.configure("verbose")
    with pytest.raises(ValueError):
        logs.configure("info", "xml")


def test_metrics_text_format():
    m = Metrics()
    m.reconcile_total.inc("gitrepository", "success")
    m.reconcile_total.inc("gitrepository", "success")
    m.reconcile_errors.inc("gitrepository")
    m.reconcile_time.observe("gitrepository", value=0.3)
    m.gotk_duration.observe("GitRepository", "podinfo", "flux-system", value=2.0)
    out = m.render()
    assert 'controller_runtime_reconcile_total{controller="gitrepository",result="success"} 2' in out
    assert 'controller_runtime_reconcile_errors_total{controller="gitrepository"} 1' in out
    assert "# TYPE gotk_reconcile_duration_seconds histogram" in out
    assert 'gotk_reconcile_duration_seconds_count{kind="GitRepository",name="podinfo",namespace="flux-system"} 1' in out
    assert 'gotk_reconcile_duration_seconds_bucket{kind="GitRepository",name="podinfo",namespace="flux-system",le="+Inf"} 1' in out
    buckets = [line for line in out.splitlines()
               if line.startswith("controller_runtime_reconcile_time_seconds_bucket")]
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts) and counts[-1] == 1  # cumulative
    assert "process_resident_memory_bytes" in out and "process_start_time_seconds" in out


def test_metric_label_values_escaped():
    m = Metrics()
    m.reconcile_errors.inc('we"ird\\name\n')
    assert 'controller="we\\"ird\\\\name\\n"' in m.render()


def test_parse_addr():
    assert parse_addr(":8080") == ("", 8080)
    assert parse_addr("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_addr("") is None and parse_addr("0") is None
    with pytest.raises(ValueError):
        parse_addr("8080")


def test_endpoint_server_routes():
    server = EndpointServer("127.0.0.1:0", {"/healthz": lambda: text("ok"),
                                             "/boom": lambda: 1 / 0}).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"ok"
        for path, code in (("/nope", 404), ("/boom", 500)):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + path, timeout=5)
            assert info.value.code == code
    finally:
        server.stop()


def test_entrypoint_flags_have_flux_defaults():
    args = entry.build_parser(COMPONENTS["kustomize-controller"]).parse_args([])
    s = entry.settings_from_args(COMPONENTS["kustomize-controller"], args, "flux-system")
    assert (s.metrics_addr, s.health_addr) == (":8080", ":9440")
    assert s.controller.concurrent == 4 and s.controller.requeue_dependency == 30.0
    assert (s.controller.min_retry_delay, s.controller.max_retry_delay) == (0.75, 900.0)
    assert s.controller.interval_jitter_percentage == 5.0
    assert s.watch.all_namespaces is True and s.watch.watch_namespace is None
    le = s.leader_election
    assert (le.enabled, le.lease_duration, le.renew_deadline, le.retry_period) == (False, 35.0, 30.0, 5.0)
    assert le.release_on_cancel and le.namespace == "flux-system"
    assert (s.log.level, s.log.encoding) == ("info", "json")
    assert s.field_manager == "gotk-kustomize-controller"
    source = entry.build_parser(COMPONENTS["source-controller"]).parse_args([])
    assert source.concurrent == 2


def test_entrypoint_flags_parse_pflag_style_values():
    component = COMPONENTS["helm-controller"]
    args = entry.build_parser(component).parse_args([
        "--enable-leader-election", "--watch-all-namespaces=false", "--watch-label-selector=sharding.fluxcd.io/shard=a",
        "--requeue-dependency=5s", "--leader-election-lease-duration=1m", "--interval-jitter-percentage=10",
        "--log-encoding=console", "--log-level=debug", "--concurrent=8"])
    s = entry.settings_from_args(component, args, "apps")
    assert s.leader_election.enabled and not s.watch.all_namespaces and s.watch.watch_namespace == "apps"
    assert s.watch.label_selector == "sharding.fluxcd.io/shard=a" and s.controller.requeue_dependency == 5.0
    assert s.leader_election.lease_duration == 60.0 and s.controller.interval_jitter_percentage == 10.0
    assert s.controller.concurrent == 8 and s.log.encoding == "console"


def test_entrypoint_rejects_bad_values(capsys):
    parser = entry.build_parser(COMPONENTS["helm-controller"])
    for bad in (["--interval-jitter-percentage=100"], ["--requeue-dependency=soon"], ["--log-level=loud"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert entry.main(["no-such-controller"]) == 2
    assert "unknown component" in capsys.readouterr().err


def test_lease_name_as_flux():
    assert lease_name("kustomize-controller") == "kustomize-controller-leader-election"
    sharded = lease_name("kustomize-controller", "sharding.fluxcd.io/shard=shard1")
    assert sharded.startswith("kustomize-controller-leader-election-") and len(sharded.rsplit("-", 1)[1]) == 8
    assert sharded != lease_name("kustomize-controller", "sharding.fluxcd.io/shard=shard2")


def test_leader_election_timings_validated():
    with pytest.raises(ValueError):
        LeaderElector(None, "x", "ns", lease_duration=10, renew_deadline=15, retry_period=2)
    with pytest.raises(ValueError):
        LeaderElector(None, "x", "ns", lease_duration=10, renew_deadline=5, retry_period=5)
    LeaderElector(None, "x", "ns")  # Flux's defaults: 35s / 30s / 5s
