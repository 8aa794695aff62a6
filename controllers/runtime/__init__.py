"""The shared controller runtime: every fluxpy controller implements only ``reconcile`` (and ``finalize``).

Layers, bottom up (each module imports only those below it):

- clients: ``kube`` (REST client), ``apply`` (staged server-side apply) and ``protocol`` (requestedAt,
  suspend: the client side the CLI uses), ``watch`` (list + watch informer), ``events`` (Kubernetes events),
  ``leader`` (Lease leader election), ``logs``, ``metrics``, ``endpoints`` (HTTP servers);
- queueing: ``queue`` (per-object work queue, backoff, jitter);
- processing: ``conditions`` (helpers, and the :class:`Conditions` a reconciler declares), ``outcomes``
  (typed outcomes -> Ready summary, status + requeue), ``status`` (patch helper),
  ``predicates``, ``controller`` (Reconciler + Controller), ``manager`` (a controller process),
  ``settings`` (dataclasses).

This package imports nothing itself, so ``from controllers.runtime.kube import KubeClient`` stays cheap.
"""
