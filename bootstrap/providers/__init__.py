"""Git providers bootstrap talks to through their APIs (repositories, deploy keys and tokens, team access,
pull/merge requests): :mod:`bootstrap.providers.github` (PyGithub) and :mod:`bootstrap.providers.gitlab`
(python-gitlab), behind the small interface of :mod:`bootstrap.providers.base`."""
