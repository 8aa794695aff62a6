"""Git providers reached through their APIs (repositories, deploy keys and tokens, team access, pull/merge
requests), for bootstrap and for the image automation's pull-request mode: :mod:`controllers.lib.providers.github`
(PyGithub) and :mod:`controllers.lib.providers.gitlab` (python-gitlab), behind :mod:`controllers.lib.providers.base`."""
