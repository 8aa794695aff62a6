"""The controllers' shared library: code used by more than one controller, or by a controller and the CLI or
bootstrap (artifact fetching and archives, the OCI registry client, semver, Git and Secret credentials, the
kustomize build pipeline, dependency and health checks, client builders, the reference index).

A controller package (``controllers.source``, ``controllers.kustomize``, …) imports only this library,
``controllers.runtime`` and ``controllers.api``, never a sibling; this library imports no controller package
(the import-linter contracts in ``pyproject.toml`` enforce it, ``make lint-imports``).
"""
