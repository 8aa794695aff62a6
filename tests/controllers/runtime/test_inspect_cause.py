"""``why``'s nodes name the failure being retried even at the instant Ready is Unknown (a retry in progress)."""
from __future__ import annotations

from controllers.runtime.inspect import Node, root_cause


def _git(conditions):
    return Node("GitRepository", "flux-system", "repo",
                obj={"metadata": {"name": "repo"}, "status": {"conditions": conditions}})


def test_a_retry_in_progress_still_names_the_failure():
    node = _git([{"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "retrying"},
                 {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "reconciliation in progress"},
                 {"type": "FetchFailed", "status": "True", "reason": "AuthenticationFailed",
                  "message": "authentication required"}])
    assert root_cause(node) is node
    assert (node.reason, node.message) == ("AuthenticationFailed", "authentication required")


def test_ready_false_and_a_first_reconciliation_keep_the_ready_condition():
    failed = _git([{"type": "Ready", "status": "False", "reason": "GitOperationFailed", "message": "clone failed"},
                   {"type": "FetchFailed", "status": "True", "reason": "AuthenticationFailed", "message": "x"}])
    assert failed.reason == "GitOperationFailed"
    first = _git([{"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "in progress"}])
    assert (first.reason, first.message) == ("Progressing", "in progress")


def test_a_release_links_to_the_helmchart_flux_makes_for_it():
    from controllers.api.helm import HELM_RELEASE
    from controllers.runtime.inspect import links

    release = {"metadata": {"name": "web", "namespace": "apps"},
               "spec": {"chart": {"spec": {"chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "r",
                                                                         "namespace": "flux-system"}}}}}
    assert links(HELM_RELEASE, release)[0] == ("chart", "HelmChart", "apps-web", None, "flux-system")
    release["spec"] = {"chartRef": {"kind": "OCIRepository", "name": "charts"}}
    assert links(HELM_RELEASE, release)[0] == ("chartRef", "OCIRepository", "charts", None, "apps")
