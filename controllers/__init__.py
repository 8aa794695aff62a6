"""fluxpy's controllers, their shared runtime, the API models and the local control plane."""

#: fluxpy's version: the CLI, the manifests it generates and the controller image share it.
__version__ = "0.1.0"
