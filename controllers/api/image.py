"""image.toolkit.fluxcd.io/v1: ImageRepository and ImagePolicy (image-reflector-controller),
ImageUpdateAutomation (image-automation-controller)."""
from __future__ import annotations

from controllers.api import meta
from controllers.api.meta import (
    access_from, age_column, interval, label_selector, local_ref, ready_columns, status, suspend,
)
from controllers.api.enums import OCI_PROVIDERS
from controllers.api.schema import Arr, Bool, Duration, Enum, Field, Int, Map, Str, Time, obj
from controllers.api.types import Column, Kind, OlderVersion, PrinterColumn

REFLECTOR = "image-reflector-controller"
AUTOMATION = "image-automation-controller"


def _image_ref(description: str) -> Field:
    return obj(
        description,
        digest=Str("Digest of the image."),
        name=Str("Image name without tag.", required=True),
        tag=Str("Image tag.", required=True),
    )


#: ImageRepository: the "revision" is the tag count of the last scan (flux: "scan fetched N tags").
IMAGE_REPOSITORY = Kind(
    group=meta.IMAGE_GROUP, version="v1", kind="ImageRepository", plural="imagerepositories",
    singular="imagerepository", short_names=("imgrepo", "imagerepo"),
    spec_schema=obj(
        "A container image repository whose tags are scanned.",
        image=Str("Image name without tag, e.g. 'ghcr.io/org/app'.", required=True),
        interval=interval("How often to scan for tags."),
        timeout=Duration("Timeout of one scan; interval when absent.", hours=False),
        secretRef=local_ref("Secret of type kubernetes.io/dockerconfigjson with registry credentials."),
        proxySecretRef=local_ref("Secret with the proxy address and optional credentials."),
        serviceAccountName=Str("Service account whose image pull secrets authenticate.", max_length=253),
        certSecretRef=local_ref("Secret with TLS client certificate/key and/or CA."),
        accessFrom=access_from(),
        suspend=suspend(),
        exclusionList=Arr(Str(), "Regular expressions of tags to leave out.", default=[r"^.*\.sig$"],
                          max_items=25),
        provider=Enum(*OCI_PROVIDERS, doc="Registry authentication provider.",
                      default="generic"),
        insecure=Bool("Allow plain HTTP registries."),
    ).schema,
    status_schema=status(
        canonicalImageName=Str("The image name with registry host made explicit."),
        lastScanResult=obj(
            "Result of the last successful scan.",
            latestTags=Arr(Str(), "The most recent tags found (at most 10)."),
            revision=Str("Digest of the scanned tag list."),
            scanTime=Time("When the scan happened."),
            tagCount=Int("How many tags were found.", required=True),
        ),
        observedExclusionList=Arr(Str(), "The exclusion list of the last scan."),
    ).schema,
    printer_columns=(
        PrinterColumn("Image", ".spec.image"),
        PrinterColumn("Tags", ".status.lastScanResult.tagCount"),
        *ready_columns(),
        PrinterColumn("Last scan", ".status.lastScanResult.scanTime", priority=1),
        age_column(),
    ),
    cli_names=("image repository", "images repository", "imagerepository", "imagerepositories",
               "imgrepo", "imagerepo"),
    cli_group="images", revision=Column("TAGS", ("status.lastScanResult.tagCount",)), reconciled="scan fetched {revision} tags",
    columns=(Column("LAST SCAN", ("status.lastScanResult.scanTime",)), meta.SUSPENDED_COLUMN),
    controller=REFLECTOR,
)


def _image_repository_ref(obj: dict) -> dict | None:
    """An ImagePolicy's ``imageRepositoryRef``, which names no kind: always an ImageRepository."""
    ref = (obj.get("spec") or {}).get("imageRepositoryRef")
    return {**ref, "kind": "ImageRepository"} if isinstance(ref, dict) else None


#: ImagePolicy: ``reconcile`` reports ``status.latestRef`` as ``<name>:<tag>[@<digest>]``; ``get`` shows
#: IMAGE and TAG apart, as flux.
IMAGE_POLICY = Kind(
    group=meta.IMAGE_GROUP, version="v1", kind="ImagePolicy", plural="imagepolicies",
    singular="imagepolicy", short_names=("imgpol", "imagepol"),
    spec_schema=obj(
        "Select the latest image of an ImageRepository by a policy.",
        imageRepositoryRef=obj(
            "The ImageRepository to select from.",
            required=True,
            name=Str("Name of the ImageRepository.", required=True),
            namespace=Str("Its namespace; the policy's when empty."),
        ),
        policy=obj(
            "How to order tags; exactly one of semver, alphabetical or numerical.",
            required=True,
            semver=obj("Order tags as semantic versions.",
                       range=Str("SemVer range tags must satisfy.", required=True)),
            alphabetical=obj("Order tags alphabetically.",
                             order=Enum("asc", "desc", doc="asc picks the last, desc the first.",
                                        default="asc")),
            numerical=obj("Order tags numerically.",
                          order=Enum("asc", "desc", doc="asc picks the largest, desc the smallest.",
                                     default="asc")),
        ),
        filterTags=obj(
            "Filter (and rewrite) tags before ordering them.",
            pattern=Str("Regular expression tags must match."),
            extract=Str("Replacement built from the pattern's groups, ordered instead of the tag."),
        ),
        digestReflectionPolicy=Enum("Always", "IfNotPresent", "Never",
                                    doc="When to look up the digest of the selected tag.", default="Never"),
        interval=Duration("How often to re-check the digest (with digestReflectionPolicy Always)."),
        suspend=suspend(),
        rules=[
            ("!has(self.interval) || (has(self.digestReflectionPolicy) && self.digestReflectionPolicy == 'Always')",
             "spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always'"),
            ("has(self.interval) || !has(self.digestReflectionPolicy) || self.digestReflectionPolicy != 'Always'",
             "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'"),
        ],
    ).schema,
    status_schema=status(
        latestRef=_image_ref("The selected image."),
        observedPreviousRef=_image_ref("The image selected before the latest one."),
    ).schema,
    printer_columns=(
        PrinterColumn("Image", ".status.latestRef.name"),
        PrinterColumn("Tag", ".status.latestRef.tag"),
        *ready_columns(),
        age_column(),
    ),
    cli_names=("image policy", "images policy", "imagepolicy", "imagepolicies", "imgpol", "imagepol"),
    cli_group="images", source_ref_path="spec.imageRepositoryRef", source_resolver=_image_repository_ref,
    revision=Column("IMAGE", ("status.latestRef",), "image"),
    columns=(Column("IMAGE", ("status.latestRef.name",)), Column("TAG", ("status.latestRef.tag",))),
    reconciled="selected ref {revision}", controller=REFLECTOR,
)
IMAGE_UPDATE_AUTOMATION = Kind(
    group=meta.IMAGE_GROUP, version="v1", kind="ImageUpdateAutomation", plural="imageupdateautomations",
    singular="imageupdateautomation", short_names=("iua", "imgupd", "imgauto"),
    spec_schema=obj(
        "Commit the images selected by ImagePolicies into a Git repository.",
        sourceRef=meta.object_ref("The GitRepository to update.", kinds=("GitRepository",), required=True,
                                  default_kind="GitRepository"),
        git=obj(
            "How to check out, commit and push.",
            checkout=obj(
                "What to check out; the GitRepository's ref when absent.",
                ref=obj(
                    "The Git reference to check out.",
                    required=True,
                    branch=Str("Branch to check out."),
                    commit=Str("Commit SHA to check out."),
                    name=Str("Full reference name."),
                    semver=Str("SemVer range the tag must satisfy."),
                    tag=Str("Tag to check out."),
                ),
            ),
            commit=obj(
                "How to write the commit.",
                required=True,
                author=obj("Commit author.", required=True,
                           email=Str("Author e-mail.", required=True),
                           name=Str("Author name.")),
                signingKey=obj("Sign commits with an OpenPGP key.",
                               secretRef=local_ref("Secret with 'git.asc' (and 'passphrase').", required=True)),
                messageTemplate=Str("Go template of the commit message."),
                messageTemplateValues=Map(Str(), "Extra values for the message template."),
                batchWindow=Duration("fluxpy: hold changes this long after the first one, then commit them "
                                     "together."),
                trailers=Bool("fluxpy: end the message with Image-Automation, Image-Policy and Image-Update "
                              "trailers (true when unset; the schema sets no default)."),
                coAuthors=Arr(Str(), "fluxpy: 'Name <email>' of each Co-authored-by trailer."),
            ),
            push=obj(
                "Where to push; the checked out branch when absent.",
                branch=Str("Branch to push to (created from the checkout if missing)."),
                refspec=Str("Git refspec to push, e.g. for creating a merge request."),
                options=Map(Str(), "Git push options."),
                pullRequest=obj(
                    "fluxpy: open (or keep) a pull/merge request from the push branch to the checkout branch.",
                    provider=Enum("github", "gitlab", doc="The Git provider's API.", required=True),
                    secretRef=local_ref("Secret with the API 'token' (and 'ca.crt').", required=True),
                    address=Str("API host or URL; the GitRepository URL's host when empty."),
                    repository=Str("owner/name (group/.../name); the GitRepository URL's path when empty."),
                    title=Str("Title; the commit message's first line when empty."),
                ),
            ),
        ),
        interval=interval("How often to run the automation."),
        policySelector=label_selector("Which ImagePolicies to use; all in the namespace when absent."),
        update=obj(
            "What to update in the checkout.",
            default={"strategy": "Setters"},
            path=Str("Directory to update; the repository root when empty."),
            strategy=Enum("Setters", doc="Update fields marked with image policy markers.", default="Setters"),
        ),
        suspend=suspend(),
    ).schema,
    status_schema=status(
        lastAutomationRunTime=Time("When the automation last ran."),
        lastPushCommit=Str("SHA of the last pushed commit."),
        lastPushTime=Time("When the last commit was pushed."),
        observedPolicies=Map(_image_ref("An image selected by a policy."),
                             "The images of the last run, by policy name."),
        observedSourceRevision=Str("Source revision of the last run."),
        pendingUpdatesSince=Time("fluxpy: when the first change of the batch being held was found."),
        pullRequest=obj("fluxpy: the pull/merge request of spec.git.push.pullRequest.",
                        number=Int("Its number (GitHub) or IID (GitLab)."), url=Str("Its web page.")),
    ).schema,
    printer_columns=(
        *ready_columns(),
        PrinterColumn("Last run", ".status.lastAutomationRunTime", priority=1),
        age_column(),
    ),
    cli_names=("image update", "images update", "imageupdateautomation", "imageupdateautomations", "iua",
               "imgupd", "imgauto"),
    cli_group="images", source_ref_path="spec.sourceRef", revision=Column("COMMIT", ("status.lastPushCommit",)),
    columns=(Column("LAST RUN", ("status.lastAutomationRunTime",)), meta.SUSPENDED_COLUMN),
    reconciled="{message}", controller=AUTOMATION,
)

# v1beta2, still served by Flux 2.7 (deprecated), with the same fields as v1.
IMAGE_REPOSITORY, IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION = (
    kind.serving(OlderVersion("v1beta2", kind.spec_schema))
    for kind in (IMAGE_REPOSITORY, IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION))

IMAGE_KINDS = (IMAGE_REPOSITORY, IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION)
