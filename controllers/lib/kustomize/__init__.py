"""The kustomize build pipeline (kustomization.yaml → objects: SOPS decryption, post-build substitution,
inventory and server-side diff), used by the kustomize-controller and by ``fluxpy build``/``fluxpy diff``."""
