"""The typed failures of building a Kustomization, each carrying the reason Flux puts on Ready=False.

They are :class:`~controllers.runtime.outcomes.RetryableError` s (Flux retries every build failure after
``spec.retryInterval``), so the reconciler may let them through or catch them to record history first.
Messages name the file, line or object at fault and never carry secret values.
"""
from __future__ import annotations

from controllers.api import meta
from controllers.runtime.outcomes import RetryableError


class BuildError(RetryableError):
    """The manifests cannot be built: kustomize, generation, decryption or substitution failed."""

    default_reason = meta.BUILD_FAILED_REASON


class ArtifactError(BuildError):
    """The artifact cannot be used: download, digest, extraction, or ``spec.path`` not in it."""

    default_reason = meta.ARTIFACT_FAILED_REASON


class EncryptedSecretError(BuildError):
    """A SOPS-encrypted Secret would be applied as is (decryption not configured): refused before apply,
    with the reason Flux reports for it (its apply step fails)."""

    default_reason = meta.RECONCILIATION_FAILED_REASON
