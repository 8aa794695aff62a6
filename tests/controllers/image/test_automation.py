"""The ImageUpdateAutomation reconciler against real Git servers on loopback (smart HTTP and SSH) and the real
control plane. The ImagePolicies' ``status.latestRef`` is written by the tests (the reflector has its own
tests), so each case states exactly which images the automation sees.

Covers: setters that change only the marked bytes, Flux's message template data and events, trailers,
``observedSourceRevision`` / no-op runs, a push branch and a refspec, batch windows, GPG signing checked with
``git verify-commit``, a concurrent push (retried on a fresh checkout), a protected branch, and bad input
(template errors, removed fields, a missing GitRepository, no push branch) that commits nothing.
"""
from __future__ import annotations

import subprocess
import time

import pytest

from controllers.api.builtin import EVENT
from controllers.api.image import IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION
from controllers.api.source import GIT_REPOSITORY
from controllers.image.automation import ImageUpdateAutomationReconciler
from servers.git import GPGKey, git, git_server, git_ssh_server  # noqa: F401
from servers.githost import github_host, gitlab_host  # noqa: F401 - fixtures
from servers.objects import apply_secret, apply_source
from servers.waiting import Waits, ready_with, wait_event

TIMEOUT = 40.0
AUTOMATIONS = Waits(IMAGE_UPDATE_AUTOMATION, TIMEOUT)

DEPLOYMENT = """\
# The app, deployed by Flux.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: prod   # production

spec:
  template:
    spec:
      containers:
        - name: app
          image: 'ghcr.io/org/app:1.0.0' # {"$imagepolicy": "%(ns)s:app"}
          args: [--log-level, info]
        - name: sidecar
          image: ghcr.io/org/sidecar:2.0.0
          env:
            - name: SIDE_TAG
              value: "2.0.0" # {"$imagepolicy": "%(ns)s:sidecar:tag"}
          command:
            - |
              echo "block scalars stay"
"""
UNMARKED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: untouched\ndata:\n  image: ghcr.io/org/app:1.0.0\n"
TEMPLATE = """Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Changed.FileChanges -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind | lower }} {{ $resource.Name }}
  Changes:
{{- range $_, $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
Cluster: {{ .Values.cluster }}"""


@pytest.fixture
def automation(start_controller, namespace, flux_crds):
    return start_controller(ImageUpdateAutomationReconciler(), namespace)


def set_policy(kube, namespace, name, image, tag, digest="", labels=None):
    """An ImagePolicy whose status selected ``image:tag`` (as the reflector would have written)."""
    kube.apply({"apiVersion": IMAGE_POLICY.api_version, "kind": "ImagePolicy",
                "metadata": {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})},
                "spec": {"imageRepositoryRef": {"name": name}, "policy": {"alphabetical": {}}}}, field_manager="test")
    ref = {"name": image, "tag": tag, **({"digest": digest} if digest else {})}
    kube.apply({"apiVersion": IMAGE_POLICY.api_version, "kind": "ImagePolicy",
                "metadata": {"name": name, "namespace": namespace}, "status": {"latestRef": ref}},
               field_manager="test-status", subresource="status")


def git_repository(kube, namespace, url, branch="main", **spec):
    apply_source(kube, GIT_REPOSITORY, namespace, "repo", {"url": url, "interval": "1h", "ref": {"branch": branch},
                                                           **spec})


def apply_automation(kube, namespace, name="auto", *, commit=None, push=None, **spec):
    git_spec = {"commit": {"author": {"name": "Flux Bot", "email": "flux@example.com"}, **(commit or {})}}
    if push:
        git_spec["push"] = push
    return apply_source(kube, IMAGE_UPDATE_AUTOMATION, namespace, name, {
        "sourceRef": {"kind": "GitRepository", "name": "repo"}, "interval": "1h", "git": git_spec,
        "update": {"path": "./deploy", "strategy": "Setters"}, **spec})


def pushed(commit: str):
    return lambda obj: obj.get("status", {}).get("lastPushCommit") == commit


def ready_after_push(obj) -> bool:
    return bool(obj.get("status", {}).get("lastPushCommit")) and ready_with("True")(obj)


def condition(obj, type_="Ready"):
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def app_repo(git_server, namespace, name="app"):
    repo = git_server.repo(name, {"deploy/app.yaml": DEPLOYMENT % {"ns": namespace}, "deploy/cm.yaml": UNMARKED,
                                  "README.md": "image: ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"x:y\"}\n"})
    return repo.allow_push()


# ------------------------------------------------------------------------------------------------ tests


def test_only_marked_values_change_with_template_trailers_and_event(kube, namespace, git_server, automation):
    repo = app_repo(git_server, namespace)
    before = repo.head()
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    set_policy(kube, namespace, "sidecar", "ghcr.io/org/sidecar", "2.1.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace, commit={"messageTemplate": TEMPLATE, "messageTemplateValues": {"cluster": "prod"},
                                              "coAuthors": ["Jane Doe <jane@example.com>"]})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_after_push, "pushed")

    head = repo.head()
    assert head != before and obj["status"]["lastPushCommit"] == head
    assert git("rev-parse", f"{head}^", cwd=repo.bare).strip() == before
    expected = (DEPLOYMENT % {"ns": namespace}).replace("'ghcr.io/org/app:1.0.0'", "'ghcr.io/org/app:1.1.0'") \
        .replace('"2.0.0" #', '"2.1.0" #')
    assert repo.show("main", "deploy/app.yaml") == expected  # byte for byte: only the two values moved
    assert repo.show("main", "deploy/cm.yaml") == UNMARKED
    assert "x:y" in repo.show("main", "README.md")  # outside update.path
    assert git("diff", "--stat", before, head, cwd=repo.bare).count("|") == 1

    message = repo.message("main")
    assert message == (
        f"Automated image update\n\nAutomation name: {namespace}/auto\n\nFiles:\n- app.yaml\nObjects:\n"
        "- deployment app\n  Changes:\n    - ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0\n\n"
        "    - 2.0.0 -> 2.1.0\nCluster: prod\n\n"
        f"Image-Automation: {namespace}/auto\n"
        f"Image-Policy: {namespace}/app ghcr.io/org/app:1.1.0\n"
        f"Image-Policy: {namespace}/sidecar ghcr.io/org/sidecar:2.1.0\n"
        "Image-Update: app.yaml ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0\n"
        "Image-Update: app.yaml 2.0.0 -> 2.1.0\n"
        "Co-authored-by: Jane Doe <jane@example.com>\n")
    trailers = git("interpret-trailers", "--parse", input=message.encode())
    assert f"Image-Automation: {namespace}/auto" in trailers and "Co-authored-by: Jane Doe" in trailers
    assert git("log", "-1", "--format=%an <%ae>", "main", cwd=repo.bare).strip() == "Flux Bot <flux@example.com>"

    status = obj["status"]
    assert status["observedSourceRevision"] == f"main@sha1:{head}"
    assert status["observedPolicies"] == {"app": {"name": "ghcr.io/org/app", "tag": "1.1.0"},
                                          "sidecar": {"name": "ghcr.io/org/sidecar", "tag": "2.1.0"}}
    assert condition(obj)["message"] == "repository up-to-date"
    event = wait_event(kube, namespace, "auto", "Succeeded")
    assert event["message"].startswith(f"pushed commit '{head[:7]}' to branch 'main'\nAutomated image update")

    # nothing changed: a new run pushes nothing
    again = AUTOMATIONS.reconcile_now(kube, namespace, "auto")
    assert again["status"]["lastPushCommit"] == head and repo.head() == head

    # a policy moves: the watch runs the automation, which commits only that change
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.2.0", digest="sha256:" + "a" * 64)
    moved = AUTOMATIONS.wait(kube, namespace, "auto", lambda o: o["status"].get("lastPushCommit") not in (None, head),
                             "second push")
    assert "'ghcr.io/org/app:1.2.0@sha256:" + "a" * 64 + "'" in repo.show("main", "deploy/app.yaml")
    assert moved["status"]["observedPolicies"]["app"]["digest"] == "sha256:" + "a" * 64


def test_push_branch_refspec_and_default_message(kube, namespace, git_server, automation):
    repo = app_repo(git_server, namespace)
    base = repo.head()
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.5.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace, commit={"trailers": False},
                     push={"branch": "image-updates", "refspec": "refs/heads/image-updates:refs/heads/review"})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_after_push, "pushed to the branch")
    update = repo.head("image-updates")
    assert repo.head() == base  # main untouched
    assert git("rev-parse", f"{update}^", cwd=repo.bare).strip() == base
    assert repo.head("review") == update
    assert repo.message("image-updates") == "Update from image update automation\n"
    assert obj["status"]["observedSourceRevision"] == f"main@sha1:{base}"
    event = wait_event(kube, namespace, "auto", "Succeeded")
    assert event["message"] == (f"pushed commit '{update[:7]}' to branch 'image-updates' and refspecs "
                                "'refs/heads/image-updates:refs/heads/review'\nUpdate from image update automation")

    # main moves on: the update branch is rebuilt on top of it (force-pushed), still one commit ahead
    new_base = repo.commit({"other.txt": "x\n"}, "unrelated change")
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.6.0")
    AUTOMATIONS.wait(kube, namespace, "auto", lambda o: o["status"].get("lastPushCommit") not in (None, update),
                     "rebuilt branch")
    assert git("rev-parse", "image-updates^", cwd=repo.bare).strip() == new_base
    assert "ghcr.io/org/app:1.6.0" in repo.show("image-updates", "deploy/app.yaml")


def test_batch_window_makes_one_commit(kube, namespace, git_server, automation):
    repo = app_repo(git_server, namespace)
    base = repo.head()
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.0.0")
    set_policy(kube, namespace, "sidecar", "ghcr.io/org/sidecar", "2.0.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace, commit={"batchWindow": "4s"})
    AUTOMATIONS.wait(kube, namespace, "auto", ready_with("True"), "nothing to do yet")
    assert repo.head() == base

    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    held = AUTOMATIONS.wait(kube, namespace, "auto", lambda o: o["status"].get("pendingUpdatesSince")
                            and "batching" in condition(o)["message"], "batch open")
    assert condition(held)["message"].startswith("batching 1 image update in 1 file: commit in")
    time.sleep(1)
    set_policy(kube, namespace, "sidecar", "ghcr.io/org/sidecar", "2.1.0")
    done = AUTOMATIONS.wait(kube, namespace, "auto", ready_after_push, "batch committed")
    assert git("rev-list", "--count", f"{base}..main", cwd=repo.bare).strip() == "1"
    content = repo.show("main", "deploy/app.yaml")
    assert "ghcr.io/org/app:1.1.0" in content and '"2.1.0"' in content
    assert "pendingUpdatesSince" not in done["status"]
    assert "Image-Update: app.yaml 2.0.0 -> 2.1.0" in repo.message("main")


def test_signed_commits_over_ssh(kube, namespace, git_ssh_server, automation, tmp_path):
    repo = git_ssh_server.repo("signed", {"deploy/app.yaml": DEPLOYMENT % {"ns": namespace}})
    key = GPGKey(tmp_path / "gpg", "Flux Bot <flux@example.com>")
    try:
        secret_key = key._gpg("--armor", "--export-secret-keys", key.fingerprint)
        apply_secret(kube, namespace, "signing", {"git.asc": secret_key})
        apply_secret(kube, namespace, "ssh", {"identity": git_ssh_server.client_key.decode(),
                                              "known_hosts": git_ssh_server.known_hosts.decode()})
        set_policy(kube, namespace, "app", "ghcr.io/org/app", "3.0.0")
        git_repository(kube, namespace, git_ssh_server.url(repo), secretRef={"name": "ssh"})
        apply_automation(kube, namespace, commit={"signingKey": {"secretRef": {"name": "signing"}}})
        obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_after_push, "signed push")
        verify = subprocess.run(["git", "verify-commit", "--raw", obj["status"]["lastPushCommit"]], cwd=repo.bare,
                                env={"PATH": "/usr/bin:/bin", "GNUPGHOME": str(key.home)}, capture_output=True)
        assert verify.returncode == 0 and f"VALIDSIG {key.fingerprint}" in verify.stderr.decode()
    finally:
        key.stop()


def test_concurrent_push_is_retried_on_a_fresh_checkout(kube, namespace, git_server, automation):
    repo = app_repo(git_server, namespace)
    # the first push finds that someone else pushed meanwhile (the hook moves main once)
    repo.hook("pre-receive", f"""
if [ ! -e "{repo.bare}/raced" ]; then
  touch "{repo.bare}/raced"
  unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
  export GIT_AUTHOR_NAME=other GIT_AUTHOR_EMAIL=other@example.com GIT_COMMITTER_NAME=other \
    GIT_COMMITTER_EMAIL=other@example.com
  c=$(git commit-tree main^{{tree}} -p main -m "concurrent change")
  git update-ref refs/heads/main "$c"
fi
""")
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace)
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_after_push, "pushed after a retry")
    assert obj["metadata"]["generation"] == obj["status"]["observedGeneration"]
    assert wait_event(kube, namespace, "auto", "Succeeded")  # within one reconciliation: no failure event
    assert not [e for e in kube.list(EVENT, namespace)["items"] if e["type"] == "Warning"]
    assert git("log", "-1", "--format=%s", "main^", cwd=repo.bare).strip() == "concurrent change"
    assert "ghcr.io/org/app:1.1.0" in repo.show("main", "deploy/app.yaml")


def test_protected_branch_is_a_clear_condition(kube, namespace, git_server, automation):
    repo = app_repo(git_server, namespace)
    base = repo.head()
    repo.hook("pre-receive", 'echo "GH006: Protected branch update failed for refs/heads/main." >&2\nexit 1\n')
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace)
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_with("False", "GitOperationFailed"), "protected")
    message = condition(obj)["message"]
    assert message.startswith("failed to update source: failed to push to remote: the branch 'main' is protected")
    assert "spec.git.push.branch" in message and repo.head() == base


@pytest.mark.parametrize("commit, reason, where, text", [
    ({"messageTemplate": "{{ .Changed.Nope }"}, "GitOperationFailed", "Ready",
     "failed to update source: unable to create commit message template from spec"),
    ({"messageTemplate": "{{ range .Updated }}{{ end }}"}, "RemovedTemplateField", "Stalled",
     "template uses removed '.Updated' field. Please use '.Changed' instead."),
    ({"messageTemplate": "{{ .AutomationObject.Nope }}"}, "GitOperationFailed", "Ready",
     "failed to update source: failed to run template from spec: template: commit message:1: executing"),
])
def test_template_errors_commit_nothing(kube, namespace, git_server, automation, commit, reason, where, text):
    repo = app_repo(git_server, namespace)
    base = repo.head()
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    git_repository(kube, namespace, git_server.url(repo))
    apply_automation(kube, namespace, commit=commit)
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_with("False", reason), reason)
    assert condition(obj, where)["message"].startswith(text)
    assert repo.head() == base and git("branch", "--list", cwd=repo.bare).strip() == "* main"


def test_missing_source_and_push_branch(kube, namespace, git_server, automation):
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.1.0")
    apply_automation(kube, namespace, "no-repo")
    obj = AUTOMATIONS.wait(kube, namespace, "no-repo", ready_with("False", "SourceManagerFailed"), "no repository")
    assert condition(obj)["message"].startswith(
        "failed configuring source manager: referenced git repository does not exist")

    repo = app_repo(git_server, namespace)
    apply_source(kube, GIT_REPOSITORY, namespace, "repo", {"url": git_server.url(repo), "interval": "1h",
                                                           "ref": {"tag": "v1"}})
    apply_automation(kube, namespace, "no-branch")
    obj = AUTOMATIONS.wait(kube, namespace, "no-branch", ready_with("False", "SourceManagerFailed"), "no branch")
    assert condition(obj)["message"] == ("failed configuring source manager: push spec not provided, and cannot be "
                                         "inferred from .spec.git.checkout.ref or GitRepository .spec.ref")


@pytest.mark.parametrize("flavor", ["github", "gitlab"])
def test_pull_request_mode_opens_one_request_and_keeps_it(kube, namespace, request, automation, flavor):
    """The push branch goes to the local GitHub/GitLab (TLS, private repository), one pull/merge request is
    opened from it to the checkout branch through the provider's API, a later update keeps that request."""
    host = request.getfixturevalue(f"{flavor}_host")
    hosted = host.add_repo("acme", "fleet", files={"deploy/app.yaml": DEPLOYMENT % {"ns": namespace}})
    ca = open(host.ca_file).read()
    apply_secret(kube, namespace, "git-auth", {"username": "alice", "password": host.token, "ca.crt": ca})
    apply_secret(kube, namespace, "api-token", {"token": host.token, "ca.crt": ca})
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.5.0")
    git_repository(kube, namespace, host.http_url(hosted), secretRef={"name": "git-auth"})
    apply_automation(kube, namespace, push={"branch": "flux/{{ .AutomationObject.Name }}-{{ .Values.env }}",
                                            "pullRequest": {"provider": flavor, "secretRef": {"name": "api-token"}}},
                     commit={"messageTemplate": "Update app images\n\nPolicies: {{ len .Changed.Changes }} change(s)",
                             "messageTemplateValues": {"env": "image-updates"}})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", lambda o: o["status"].get("pullRequest"), "the pull request")
    (change,) = hosted.changes  # the branch name rendered from its template
    assert (change.head, change.base, change.state) == ("flux/auto-image-updates", "main", "open")
    assert change.title == "Update app images"
    assert "Policies: 1 change(s)" in change.body and f"Image-Policy: {namespace}/app ghcr.io/org/app:1.5.0" in \
        change.body
    assert obj["status"]["pullRequest"]["number"] == change.number
    assert obj["status"]["pullRequest"]["url"].endswith(f"/{change.number}")
    assert "ghcr.io/org/app:1.5.0" in host.read(hosted, "deploy/app.yaml", "flux/auto-image-updates")
    assert "ghcr.io/org/app:1.5.0" not in host.read(hosted, "deploy/app.yaml")  # main untouched until merged
    assert wait_event(kube, namespace, "auto", "PullRequestOpened")["message"].startswith(
        f"opened pull request #{change.number} from 'flux/auto-image-updates'")

    # a newer tag: the branch is rebuilt and force-pushed, the same request shows it (no second one)
    first = obj["status"]["lastPushCommit"]
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.6.0")
    obj = AUTOMATIONS.wait(kube, namespace, "auto", lambda o: o["status"].get("lastPushCommit") not in (None, first),
                           "the second push")
    assert len(hosted.changes) == 1 and obj["status"]["pullRequest"]["number"] == change.number
    assert "ghcr.io/org/app:1.6.0" in host.read(hosted, "deploy/app.yaml", "flux/auto-image-updates")


def test_pull_request_mode_bad_input(kube, namespace, git_server, github_host, automation):
    repo = app_repo(git_server, namespace)
    set_policy(kube, namespace, "app", "ghcr.io/org/app", "1.5.0")
    git_repository(kube, namespace, git_server.url(repo))
    # the push branch is the checkout branch: nothing to open a request from
    apply_automation(kube, namespace, push={"branch": "main", "pullRequest": {
        "provider": "github", "secretRef": {"name": "api-token"}}})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_with("False", "InvalidPullRequestConfig"), "stalled")
    assert "spec.git.push.branch" in condition(obj)["message"]
    assert condition(obj, "Stalled")["status"] == "True"
    # a branch template that renders no valid branch name
    apply_automation(kube, namespace, push={"branch": "updates/{{ .Values.missing }}"})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_with("False", "InvalidPushBranch"), "bad branch")
    message = condition(obj)["message"]
    assert message.startswith("spec.git.push.branch template rendered 'updates/") and \
        message.endswith("which is not a valid branch name")
    apply_automation(kube, namespace, push={"branch": "updates/{{ .Nope }}"})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", lambda o: "Nope" in condition(o)["message"], "bad template")
    assert condition(obj)["reason"] == "InvalidPushBranch"
    assert condition(obj)["message"].startswith("invalid spec.git.push.branch template: template: push branch:1:")
    # a token the provider refuses: a clear condition, no token in it
    apply_secret(kube, namespace, "api-token", {"token": "wrong-token", "ca.crt": open(github_host.ca_file).read()})
    apply_automation(kube, namespace, push={"branch": "image-updates", "pullRequest": {
        "provider": "github", "secretRef": {"name": "api-token"}, "address": github_host.base_url,
        "repository": "acme/fleet"}})
    obj = AUTOMATIONS.wait(kube, namespace, "auto", ready_with("False", "PullRequestFailed"), "refused token")
    message = condition(obj)["message"]
    assert message.startswith("failed to open pull request:") and "wrong-token" not in message
    assert "401" in message or "credentials" in message.lower()
