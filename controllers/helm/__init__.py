"""The helm-controller: releases Helm charts as HelmReleases say (Flux's helm.toolkit.fluxcd.io/v2).

- :mod:`~controllers.helm.reconciler` — the reconcile flow and Flux's atomic release state machine;
- :mod:`~controllers.helm.actions` — Helm's actions done by fluxpy (install, upgrade, test, rollback,
  uninstall, unlock, drift) over Helm's own storage (:mod:`controllers.lib.helm_storage`);
- :mod:`~controllers.helm.history` — ``status.history`` snapshots, digests and the remediation settings.

Rendering (the real ``helm``, post renderers) is :mod:`controllers.lib.helm_release`, shared with the CLI's
``build``/``diff helmrelease``.
"""
