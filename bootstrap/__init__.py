"""Bootstrap: commit fluxpy's manifests to a Git repository and make the cluster sync itself from it.

- :mod:`bootstrap.plan` — the run, as a sequence of steps reporting progress to a UI (``Bootstrap``);
- :mod:`bootstrap.git` — the repository with GitPython: clone, write, commit (GPG-signed), push, failures
  classified (``Checkout``, ``Credentials``, ``scan_host_keys``, ``GPGSigner``);
- :mod:`bootstrap.repository` — where the repository lives: a plain URL or a provider repository;
- :mod:`controllers.lib.providers` — GitHub (PyGithub) and GitLab (python-gitlab);
- :mod:`bootstrap.cluster` — the existing installation, the source Secret, readiness at a revision;
- :mod:`bootstrap.demo` — the README's story on the embedded control plane.

The manifests themselves come from :mod:`manifestgen` (``install`` and ``sync``).
"""
