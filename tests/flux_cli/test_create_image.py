"""``fluxpy create image repository | policy | update``, ``get images``, ``reconcile image ...``: flux's flags,
checks and messages (the golden files of test_golden_output.py hold the exported YAML), and the whole flow
against a real docker-registry with the real image-reflector reconcilers."""
from __future__ import annotations

import pytest

from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY, IMAGE_UPDATE_AUTOMATION
from controllers.api.objects import dig
from controllers.image import tags as tagdb
from controllers.image.reflector import ImagePolicyReconciler, ImageRepositoryReconciler
from servers.registry import registry  # noqa: F401

UPDATE = ("update", "u", "--git-repo-ref=repo", "--checkout-branch=main", "--author-name=flux",
          "--author-email=flux@example.com")


@pytest.mark.parametrize("args, message", [
    (["repository", "r"], "an image repository (--image) is required"),
    (["repository", "r", "--image=ghcr.io/Org/App"], "unable to parse image value: repository can only contain"),
    (["repository", "r", "--image=alpine", "--scan-timeout=soon"], "invalid duration 'soon'"),
    (["policy", "p", "--select-semver=1.x"], "the name of an ImageRepository in the namespace is required"),
    (["policy", "p", "--image-ref=r"], "a policy must be provided with either --select-semver or --select-alpha"),
    (["policy", "p", "--image-ref=r", "--select-semver=1.x", "--select-alpha=asc"],
     "only one of --select-semver, --select-alpha or --select-numeric can be specified"),
    (["policy", "p", "--image-ref=r", "--select-numeric=up"], '--select-numeric must be one of ["asc", "desc"]'),
    (["policy", "p", "--image-ref=r", "--select-alpha=up"], '--select-alpha must be one of ["asc", "desc"]'),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--filter-regex=(unclosed"],
     "--filter-regex is an invalid regex pattern"),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--filter-extract=$ts"],
     "cannot specify --filter-extract without specifying --filter-regex"),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--filter-regex=^(?P<ts>\\d+)", "--filter-extract=$t"],
     "capture group $t used in --filter-extract not found in --filter-regex"),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--filter-regex=^(?P<ts>\\d+)",
      "--filter-extract=${ts"], "--filter-extract is malformed"),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--reflect-digest=Sometimes"],
     "invalid value for --reflect-digest, must be one of 'Never', 'IfNotPresent', 'Always'"),
    (["policy", "p", "--image-ref=r", "--select-alpha=asc", "--interval=5m"],
     "the --interval flag can only be used with the 'Always' digest reflection policy"),
    (["update", "u", "--checkout-branch=main"], "a reference to a GitRepository is required (--git-repo-ref)"),
    (["update", "u", "--git-repo-ref=repo"], "the Git repository branch is required (--checkout-branch)"),
    (["update", "u", "--git-repo-ref=repo", "--checkout-branch=main"], "the author name is required"),
    (["update", "u", "--git-repo-ref=repo", "--checkout-branch=main", "--author-name=f"],
     "the author email is required (--author-email)"),
    ([*UPDATE, "--push-branch=updates", "--pull-request-provider=gitea", "--pull-request-secret-ref=t"],
     "invalid --pull-request-provider 'gitea': expected github or gitlab"),
    ([*UPDATE, "--push-branch=updates", "--pull-request-provider=github"], "needs --pull-request-secret-ref"),
    ([*UPDATE, "--pull-request-provider=github", "--pull-request-secret-ref=t"],
     "a pull request needs --push-branch set to a branch other than --checkout-branch"),
    ([*UPDATE, "--commit-template={{ range .Updated.Images }}"],
     "invalid --commit-template: template: commit template:1: unexpected EOF"),
])
def test_bad_input_is_one_message(fluxpy, args, message):
    res = fluxpy("create", "image", *args, "--export")
    assert res.exit_code != 0
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout and res.stdout == ""


def test_update_in_pull_request_mode(fluxpy):
    res = fluxpy("create", "image", *UPDATE, "--push-branch=flux/updates", "--pull-request-provider=gitlab",
                 "--pull-request-secret-ref=gitlab-token", "--export")
    assert res.exit_code == 0, res.stderr
    assert ("    push:\n      branch: flux/updates\n      pullRequest:\n        provider: gitlab\n"
            "        secretRef:\n          name: gitlab-token\n") in res.stdout


def test_extract_may_use_numbered_groups_and_dollar_escapes(fluxpy):
    res = fluxpy("create", "image", "policy", "p", "--image-ref=r", "--select-numeric=asc",
                 "--filter-regex=^main-(\\d+)-(?P<ts>\\d+)$", "--filter-extract=$$${1}.$ts", "--export")
    assert res.exit_code == 0, res.stderr
    assert "extract: $$${1}.$ts" in res.stdout


def test_create_get_and_reconcile_images_in_the_cluster(fluxpy, kube, namespace, control_plane, flux_crds,
                                                        start_controller, registry, tmp_path):
    database = tagdb.TagDatabase(tmp_path / "tags.sqlite")
    start_controller(ImageRepositoryReconciler(database), namespace)
    start_controller(ImagePolicyReconciler(database), namespace)
    repository = registry.new_repository("app")
    registry.push(repository, "1.0.0", {"app.yaml": "v: 1\n"})
    registry.tag(repository, "1.0.0", ["1.1.0", "2.0.0-rc.1", "latest"])
    image = f"{registry.host}/{repository}"
    common = ("-n", namespace, "--kubeconfig", str(control_plane.kubeconfig), "--timeout", "60s")

    res = fluxpy("create", "image", "repository", "app", f"--image={image}", "--interval=10m", *common)
    assert res.exit_code == 0, res.stderr
    assert "ImageRepository created" in res.stderr and "✔ scan fetched 4 tags" in res.stderr
    res = fluxpy("create", "image", "policy", "app", "--image-ref=app", "--select-semver=1.x", *common)
    assert res.exit_code == 0, res.stderr
    assert f"✔ selected ref {image}:1.1.0" in res.stderr
    assert dig(kube.get(IMAGE_POLICY, "app", namespace), "status.latestRef.tag") == "1.1.0"

    registry.tag(repository, "1.0.0", ["1.2.0"])
    res = fluxpy("reconcile", "image", "repository", "app", *common)
    assert res.exit_code == 0, res.stderr
    assert "✔ scan fetched 5 tags" in res.stderr
    assert dig(kube.get(IMAGE_REPOSITORY, "app", namespace), "status.lastScanResult.tagCount") == 5
    res = fluxpy("reconcile", "image", "policy", "app", *common)
    assert res.exit_code == 0, res.stderr
    assert f"✔ selected ref {image}:1.2.0" in res.stderr

    res = fluxpy("get", "images", "all", *common)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("imagerepository/app") and "True" in line for line in lines), res.stdout
    assert any(line.startswith("imagepolicy/app") and image in line and "1.2.0" in line for line in lines), res.stdout

    res = fluxpy("create", "image", *UPDATE, *common[:-1], "2s")  # no automation controller: the wait times out
    assert res.exit_code != 0 and "ImageUpdateAutomation created" in res.stderr
    assert dig(kube.get(IMAGE_UPDATE_AUTOMATION, "u", namespace), "spec.sourceRef") == {
        "kind": "GitRepository", "name": "repo"}
    database.close()
