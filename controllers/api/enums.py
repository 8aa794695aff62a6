"""The API enums a CLI flag can name, declared once: the CRD schemas (``controllers.api.*``) and the CLI's
typed flag values (``flux_cli.flagvalues``) both read them from here. Plain tuples, no imports, so a CLI
command pays nothing for them at start-up."""

#: GitRepository ``spec.provider``.
GIT_PROVIDERS = ("generic", "azure", "github")
#: OCIRepository, HelmRepository (type oci) and ImageRepository ``spec.provider``.
OCI_PROVIDERS = ("generic", "aws", "azure", "gcp")
#: Bucket ``spec.provider`` (in the order of Flux's CRD).
BUCKET_PROVIDERS = ("generic", "aws", "gcp", "azure")
#: ``spec.verify.provider`` of OCIRepository and HelmChart.
VERIFY_PROVIDERS = ("cosign", "notation")
#: Kustomization ``spec.decryption.provider``.
DECRYPTION_PROVIDERS = ("sops",)
#: HelmChart ``spec.reconcileStrategy`` (and a HelmRelease's chart template).
CHART_RECONCILE_STRATEGIES = ("ChartVersion", "Revision")
#: HelmRelease ``spec.install.crds`` / ``spec.upgrade.crds``.
CRDS_POLICIES = ("Skip", "Create", "CreateReplace")
#: The sources a HelmChart (and a HelmRelease's chart template) builds charts from.
CHART_SOURCE_KINDS = ("HelmRepository", "GitRepository", "Bucket")
#: HelmRepository ``spec.type``.
HELM_REPOSITORY_TYPES = ("default", "oci")
