"""The kustomize-controller: builds a source's artifact with kustomize and applies it (Flux's Kustomization).

The build half, from an artifact to the objects to apply (it reads Secrets/ConfigMaps, never writes):

- :mod:`~controllers.lib.fetch` — ``fetch_artifact(artifact, dest, timeout=...)``: download, digest
  check, safe extraction (its ``FetchError`` becomes ``ArtifactError``, a 404 a wait);
- :mod:`~controllers.lib.kustomize.build` — ``build(root, spec, name=, namespace=, kube=) -> BuildResult``
  (``objects``, ``digest``): path, generated kustomization and the spec's overlay, SOPS decryption, the real
  kustomize, post-build substitution, commonMetadata; ``build_local`` and ``objects_to_yaml`` for
  ``fluxpy build kustomization``;
- :mod:`~controllers.lib.kustomize.envsubst` — Flux's ``${var}`` substitution and ``spec.postBuild``;
- :mod:`~controllers.lib.kustomize.decrypt` — SOPS with age/PGP keys from ``spec.decryption.secretRef``;
- :mod:`~controllers.lib.kustomize.tree` — kustomization files, root-confined paths, Go-compatible YAML;
- :mod:`~controllers.lib.kustomize.errors` — ``BuildError`` (BuildFailed), ``ArtifactError`` (ArtifactFailed),
  ``EncryptedSecretError`` (ReconciliationFailed), all retryable reconcile errors.
"""
