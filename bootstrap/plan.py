"""Bootstrap as a sequence of steps, each reporting progress through a :class:`UI` (the CLI's terminal).

1. **preflight** — options, the signing key, the cluster: an existing installation synced from another path
   is refused before anything is touched;
2. **repository** — resolve it (a provider creates it when missing and grants teams access);
3. **manifests** — clone the branch, write ``<path>/<namespace>/gotk-components.yaml``, ``gotk-sync.yaml`` and
   (when the directory has none) ``kustomization.yaml``, commit each step as Flux does (no commit when the
   content is unchanged); with ``read-only`` the files that differ are printed instead and bootstrap stops;
4. **source secret** — keep the cluster's Secret when nothing asks to change it, else make it (generate an
   SSH key, register it as a deploy key, or get a deploy token);
5. **publish** — push the commits (a branch that moved meanwhile is cloned again and the commits redone),
   or with ``pull-request`` push them to a branch and open a pull/merge request;
6. **cluster** — install the components when nothing has applied them from Git yet, apply the Secret and the
   sync objects;
7. **wait** — for the request to be merged (``pull-request``), then for the GitRepository and the
   Kustomization to be Ready at the pushed revision and the controllers to be alive.

Everything that can be refused (input, credentials, access, branch protection, an unreachable host) is
refused in steps 1–5, before the cluster changes: a failed bootstrap leaves the cluster as it was, and
running it again completes it. Repository steps are idempotent by content: a re-run with the same options
makes no commit and writes nothing to the cluster.
"""
from __future__ import annotations

import dataclasses
import time
import urllib.parse
from typing import Any

from bootstrap import cluster
from bootstrap.git import Checkout, Credentials, GitRepoError, GPGSigner, scan_host_keys, ssh_host, with_retries
from controllers.lib.providers.base import ChangeRequest, deploy_key_name, deploy_token_name
from bootstrap.repository import BootstrapSourceError, ProviderSource, Resolved, Source
from bootstrap.ui import UI
from controllers.runtime.kube import KubeClient, KubeError
from manifestgen import sync as syncgen
from manifestgen.options import InstallOptions

#: components a bootstrapped cluster cannot do without (it syncs itself with them).
REQUIRED_COMPONENTS = ("source-controller", "kustomize-controller")
MODES = ("push", "pull-request", "read-only")
#: how many times a push that lost a race is redone on a fresh clone.
PUSH_ATTEMPTS = 3


class BootstrapError(Exception):
    """Bootstrap stopped; the message names what failed and what to do."""


@dataclasses.dataclass
class SecretOptions:
    """How the cluster authenticates to the repository (the ``flux-system`` Secret)."""

    #: ``ssh`` (identity/identity.pub/known_hosts), ``basic`` (username/password), ``bearer`` or
    #: ``deploy-token`` (a GitLab deploy token as username/password).
    auth: str = "ssh"
    username: str = ""
    #: basic-auth password, or the passphrase of the SSH key.
    password: str = ""
    bearer_token: str = ""
    ca: bytes = b""
    #: the SSH key pair from ``--private-key-file``; None: keep the cluster's or generate one.
    keypair: syncgen.KeyPair | None = None
    key_algorithm: str = "ecdsa"
    rsa_bits: int = 2048
    ecdsa_curve: str = "p384"
    #: the deploy key gets write access (``--read-write-key``).
    read_write_key: bool = False


@dataclasses.dataclass
class BootstrapOptions:
    install: InstallOptions
    secret: SecretOptions = dataclasses.field(default_factory=SecretOptions)
    branch: str = "main"
    #: ``--path`` as :func:`manifestgen.sync.safe_relative_path` returns it.
    target_path: str = ""
    interval: float = 60.0
    secret_name: str = "flux-system"
    recurse_submodules: bool = False
    author_name: str = "Flux"
    author_email: str = ""
    gpg_key_ring: str = ""
    gpg_passphrase: str = ""
    gpg_key_id: str = ""
    commit_message_appendix: str = ""
    #: ``push`` (default), ``pull-request`` (protected branches) or ``read-only`` (print what to commit).
    mode: str = "push"
    #: the branch a pull request comes from ("" → ``fluxpy-bootstrap-<branch>``).
    pull_request_branch: str = ""
    #: the deploy key is already set up: do not ask (plain Git).
    silent: bool = False
    #: seconds for the whole run (git operations, applies and waits).
    timeout: float = 300.0

    @property
    def namespace(self) -> str:
        return self.install.namespace

    @property
    def head_branch(self) -> str:
        return self.pull_request_branch or f"fluxpy-bootstrap-{self.branch}"

    def sync_options(self, url: str) -> syncgen.SyncOptions:
        """The GitRepository and Kustomization (``gotk-sync.yaml``) these options make, syncing from ``url``."""
        return syncgen.SyncOptions(url=url, name=self.namespace, namespace=self.namespace, branch=self.branch,
                                   secret=self.secret_name, interval=self.interval, target_path=self.target_path,
                                   recurse_submodules=self.recurse_submodules)


@dataclasses.dataclass
class Outcome:
    """What a run did."""

    #: ``main@sha1:<hash>`` the cluster was waited for ("" when bootstrap stopped before).
    revision: str = ""
    #: commits made (and pushed or proposed).
    commits: list[str] = dataclasses.field(default_factory=list)
    change_request: ChangeRequest | None = None
    #: what is left for the user to do ("" when done).
    pending: str = ""
    #: repository-relative paths of the files that differ (read-only mode).
    files: list[syncgen.File] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Generated:
    files: list[syncgen.File]
    #: (message, paths) per commit.
    commits: list[tuple[str, list[str]]]
    sync_objects: list[dict[str, Any]]
    components: list[dict[str, Any]]


def check_options(o: BootstrapOptions) -> None:
    """The checks that need nothing but the options (BootstrapError/ValueError naming the first problem)."""
    if o.mode not in MODES:
        raise BootstrapError(f"unknown mode {o.mode!r}: use one of {', '.join(MODES)}")
    o.install.validate()
    missing = [c for c in REQUIRED_COMPONENTS if c not in o.install.all_components]
    if missing:
        raise BootstrapError(f"component {missing[0]} is required")
    o.sync_options("ssh://placeholder/x").validate()


class Bootstrap:
    """One bootstrap run against one cluster and one repository source."""

    def __init__(self, kube: KubeClient, source: Source, options: BootstrapOptions, ui: UI):
        self.kube, self.source, self.options, self.ui = kube, source, options, ui
        self.deadline = time.monotonic() + options.timeout
        self.signer: GPGSigner | None = None
        self.resolved: Resolved | None = None

    def left(self, minimum: float = 1.0) -> float:
        return max(minimum, self.deadline - time.monotonic())

    # ------------------------------------------------------------------ the run

    def run(self) -> Outcome:
        try:
            return self._run()
        except (GitRepoError, BootstrapSourceError, cluster.ClusterError) as exc:
            raise BootstrapError(getattr(exc, "message", None) or str(exc)) from None
        finally:
            if self.signer is not None:
                self.signer.close()

    def _run(self) -> Outcome:
        o = self.options
        existing = self.preflight()
        self.resolved = self.source.resolve(self.ui)
        outcome = Outcome()

        checkout, generated = self.prepare_manifests()
        try:
            changed = [f for f in generated.files if checkout.read(f.path) != f.content]
            if o.mode == "read-only":
                return self.read_only(checkout, generated, changed, existing)
            commits = self.commit(checkout, generated)
            secret = self.source_secret()
            head, outcome.change_request, checkout = self.publish(checkout, commits)
            outcome.commits = commits
        finally:
            checkout.close()
        self.apply_to_cluster(existing, generated, secret)
        if outcome.change_request is not None and outcome.change_request.state != "merged":
            head = self.wait_merged(outcome.change_request, generated)
            if not head:
                outcome.pending = self.what_is_left(outcome.change_request)
                return outcome
        elif o.mode == "pull-request" and not head:
            head = self.wait_merged(None, generated)
            if not head:
                outcome.pending = self.what_is_left(None)
                return outcome
        outcome.revision = f"{o.branch}@sha1:{head}"
        self.wait_healthy(outcome.revision)
        return outcome

    # ------------------------------------------------------------------ 1. preflight

    def preflight(self) -> dict | None:
        o = self.options
        check_options(o)
        if o.gpg_key_ring:
            self.signer = GPGSigner(o.gpg_key_ring, o.gpg_passphrase, o.gpg_key_id)
        try:
            existing = cluster.existing_kustomization(self.kube, o.namespace, o.namespace)
        except KubeError as exc:
            raise BootstrapError(f"cannot read the cluster: {exc.message}: check --kubeconfig/--context and that "
                                 "the cluster is reachable") from None
        current = cluster.path_change(existing, o.target_path)
        if current:
            raise BootstrapError(
                f"sync path configuration ({syncgen.kustomization_path(o.target_path)!r}) would overwrite path "
                f"({current!r}) of existing Kustomization '{o.namespace}/{o.namespace}': this cluster is already "
                f"bootstrapped from {current!r}; run bootstrap with --path={current.removeprefix('./') or '.'}, or "
                "uninstall first ('fluxpy uninstall') to bootstrap it from another path")
        return existing

    # ------------------------------------------------------------------ 3. manifests

    def clone(self, branch: str | None = None) -> Checkout:
        o = self.options
        assert self.resolved is not None
        branch = branch or o.branch
        self.ui.action(f"cloning branch {branch!r} from Git repository {self.resolved.clone_url!r}")
        checkout = Checkout(self.resolved.clone_url, branch, self.resolved.credentials, author_name=o.author_name,
                            author_email=o.author_email, signer=self.signer, timeout=self.left())
        try:
            checkout.clone()
        except BaseException:
            checkout.close()
            raise
        if checkout.empty:
            self.ui.success("cloned repository (empty: the first commit will create the branch)")
        elif checkout.created:
            self.ui.success(f"cloned repository (branch {branch!r} does not exist yet: it will start from the "
                            "default branch)")
        else:
            self.ui.success("cloned repository")
        return checkout

    def generate(self, checkout: Checkout) -> _Generated:
        """The files for ``checkout`` (the kustomization file depends on what the directory holds)."""
        from manifestgen.install import generate as generate_install

        o = self.options
        assert self.resolved is not None
        self.ui.action("generating component manifests")
        manifest = generate_install(o.install)
        components = syncgen.components_file(manifest.yaml, o.target_path, o.namespace)
        self.ui.success("generated component manifests")
        self.ui.action("generating sync manifests")
        sync = syncgen.generate(o.sync_options(self.resolved.sync_url))
        directory = sync.file.path.rsplit("/", 1)[0] if "/" in sync.file.path else ""
        files = [components, sync.file]
        kustomization = self._kustomization(checkout, directory, files)
        if kustomization is not None:
            files.append(kustomization)
        self.ui.success("generated sync manifests")
        appendix = f"\n\n{o.commit_message_appendix}" if o.commit_message_appendix else ""
        commits = [(f"Add fluxpy {o.install.image_tag} component manifests{appendix}", [components.path]),
                   (f"Add fluxpy sync manifests{appendix}", [f.path for f in files[1:]])]
        return _Generated(files, commits, sync.objects, manifest.objects)

    def _kustomization(self, checkout: Checkout, directory: str, files: list[syncgen.File]) -> syncgen.File | None:
        """kustomization.yaml for the directory, unless it has a kustomization file already (kept as is)."""
        if any(checkout.exists(f"{directory}/{name}" if directory else name) for name in syncgen.KUSTOMIZATION_FILES):
            return None
        entries = {path: text for path, text in checkout.walk(directory)}
        for f in files:
            entries[f.path[len(directory) + 1:] if directory else f.path] = f.content
        return syncgen.generate_kustomization(directory, syncgen.kustomization_resources(entries.items()))

    def prepare_manifests(self) -> tuple[Checkout, _Generated]:
        checkout = self.clone()
        try:
            return checkout, self.generate(checkout)
        except BaseException:
            checkout.close()
            raise

    def commit(self, checkout: Checkout, generated: _Generated) -> list[str]:
        """Write and commit; the new commits (none when the repository is up to date)."""
        checkout.write(generated.files)
        made = []
        o = self.options
        where = f"for branch {o.head_branch!r}" if o.mode == "pull-request" else f"to {o.branch!r}"
        for (message, paths), what in zip(generated.commits, ("component manifests", "sync manifests")):
            sha = checkout.commit(message, paths)
            if sha:
                made.append(sha)
                self.ui.success(f"committed {what} {where} ({sha!r})")
            else:
                self.ui.success(f"{what} are up to date")
        return made

    def read_only(self, checkout: Checkout, generated: _Generated, changed: list[syncgen.File],
                  existing: dict | None) -> Outcome:
        """Print the files to commit, or — when the repository has them — install with read-only credentials."""
        o = self.options
        if changed:
            self.ui.warning(f"read-only: {len(changed)} file(s) on branch {o.branch!r} differ from what bootstrap "
                            "generates; nothing was committed")
            for f in changed:
                self.ui.line(f"# {f.path}")
                self.ui.line(f.content.rstrip("\n"))
            what = (f"commit the file(s) above to branch {o.branch!r} of {self.source.describe()} (paths in the "
                    "'# ' lines), then run this command again to install")
            self.ui.action(what)
            return Outcome(pending=what, files=changed)
        self.ui.success("manifests are up to date in Git")
        secret = self.source_secret()
        head = checkout.head
        checkout.close()
        self.apply_to_cluster(existing, generated, secret)
        revision = f"{o.branch}@sha1:{head}"
        self.wait_healthy(revision)
        return Outcome(revision=revision)

    # ------------------------------------------------------------------ 4. source secret

    def source_secret(self) -> dict | None:
        """The Secret to apply, or None to keep the cluster's (Flux's rule: keep it when nothing — a key
        file, a CA, basic credentials, a new deploy token — asks for a change)."""
        o, s = self.options, self.options.secret
        assert self.resolved is not None
        name = o.secret_name
        self.ui.action(f"determining if source secret {o.namespace + '/' + name!r} exists")
        try:
            live = cluster.secret_data(self.kube, name, o.namespace)
        except KubeError as exc:
            raise BootstrapError(f"cannot read Secret {o.namespace}/{name}: {exc.message}") from None
        options = syncgen.GitSecretOptions(name=name, namespace=o.namespace, ca_crt=s.ca)
        if s.auth == "deploy-token":
            keep = (live or {}).get("username", "")
            token = self.source.deploy_token(self.ui, deploy_token_name(o.namespace, o.branch, name, o.target_path),
                                             keep)
            if token is None and live is not None:
                return self._keep_or_update(live, options, keep_credentials=True)
            if token is None:
                raise BootstrapError("the deploy token exists but its value is not in the cluster")
            options.username, options.password = token.username, token.token
        elif s.auth == "basic":
            options.username, options.password = s.username or "git", s.password
        elif s.auth == "bearer":
            options.bearer_token = s.bearer_token
        else:
            if live is not None and s.keypair is None and not s.ca and live.get("identity"):
                self.ui.success("source secret up to date")
                return None
            keypair = s.keypair
            if keypair is None:
                self.ui.action(f"generating {s.key_algorithm} SSH key pair")
                try:
                    keypair = syncgen.generate_keypair(s.key_algorithm, rsa_bits=s.rsa_bits, ecdsa_curve=s.ecdsa_curve)
                except ValueError as exc:
                    raise BootstrapError(str(exc)) from None
            host, port = ssh_host(self.resolved.sync_url)
            options.keypair, options.password = keypair, s.password
            options.known_hosts = scan_host_keys(host, port, timeout=min(30.0, self.left()))
        self.ui.action("generating source secret")
        secret = syncgen.generate_git_secret(options)
        if live == secret["stringData"]:
            self.ui.success("source secret up to date")
            return None
        if options.keypair is not None:
            title = deploy_key_name(o.namespace, o.branch, name, o.target_path)
            self.source.authorize_key(self.ui, title, options.keypair.public_key_text,
                                      read_only=not s.read_write_key, silent=o.silent)
        return secret

    def _keep_or_update(self, live: dict[str, str], options: syncgen.GitSecretOptions, *,
                        keep_credentials: bool) -> dict | None:
        """Keep a Secret whose credentials stay; refresh its CA when that changed."""
        if not options.ca_crt or live.get("ca.crt") == options.ca_crt.decode():
            self.ui.success("source secret up to date")
            return None
        data = dict(live)
        data["ca.crt"] = options.ca_crt.decode()
        secret = syncgen.generate_git_secret(options)
        secret["stringData"] = data
        return secret

    # ------------------------------------------------------------------ 5. publish

    def publish(self, checkout: Checkout, commits: list[str]) -> tuple[str, ChangeRequest | None, Checkout]:
        """Push (retrying a lost race on a fresh clone) or propose the commits; return the head of the
        branch the cluster follows ("" when it still waits for a merge), the change request, and the checkout
        in use."""
        o = self.options
        assert self.resolved is not None
        if o.mode == "pull-request":
            return self.propose(checkout, commits)
        if not commits:
            return checkout.head, None, checkout
        state = {"checkout": checkout}

        def attempt(number: int) -> str:
            current = state["checkout"]
            if number > 1:
                current.close()
                current = state["checkout"] = self.clone()
                generated = self.generate(current)
                if not self.commit(current, generated):
                    return current.head
            self.ui.action(f"pushing manifests to {self.resolved.clone_url!r}")
            try:
                result = current.push()
            except GitRepoError as exc:
                if exc.kind == "protected":
                    raise GitRepoError(f"{exc.message}: the branch {o.branch!r} is protected; run bootstrap with "
                                       "--via-pull-request to propose the manifests in a pull/merge request, or "
                                       "with --read-only to print them and commit them yourself", "protected") from None
                raise
            self.ui.success(f"pushed manifests to {o.branch!r} ({result.commit!r})")
            return result.commit

        try:
            head = with_retries(PUSH_ATTEMPTS, attempt, on_retry=lambda exc: self.ui.waiting(
                "git conflict detected, retrying with a fresh clone"))
        except BaseException:
            if state["checkout"] is not checkout:
                state["checkout"].close()
            raise
        return head, None, state["checkout"]

    def propose(self, checkout: Checkout, commits: list[str]) -> tuple[str, ChangeRequest | None, Checkout]:
        """Pull-request mode: push the commits to the head branch and open a request (or reuse the open one)."""
        o = self.options
        assert self.resolved is not None
        if not commits:
            self.ui.success(f"branch {o.branch!r} has the manifests: no pull request needed")
            return checkout.head, None, checkout
        if checkout.empty:
            self.ui.warning(f"the repository is empty: pushing the first commit to {o.branch!r} directly (there is "
                            "nothing to propose a change to)")
            result = checkout.push()
            return result.commit, None, checkout
        head = o.head_branch
        if checkout.same_tree_as(head):
            self.ui.success(f"branch {head!r} already proposes these manifests")
        else:
            self.ui.action(f"pushing manifests to branch {head!r} of {self.resolved.clone_url!r}")
            try:
                checkout.push(head, force=True)
            except GitRepoError as exc:
                raise GitRepoError(f"{exc.message}: bootstrap needs to push the proposal branch {head!r}; allow "
                                   "it, or use --read-only", exc.kind) from None
            self.ui.success(f"pushed manifests to branch {head!r}")
        if not isinstance(self.source, ProviderSource):
            self.ui.action(f"open a pull request from {head!r} into {o.branch!r} and merge it")
            return "", None, checkout
        provider = self.source.provider
        title = "Bootstrap fluxpy" + (f" ({o.target_path.removeprefix('./')})" if o.target_path.strip("./") else "")
        body = (f"Adds the fluxpy {o.install.image_tag} manifests that make the cluster sync itself from "
                f"`{syncgen.kustomization_path(o.target_path)}` on `{o.branch}`.\n\nGenerated by `fluxpy bootstrap`; "
                "the cluster applies them once this is merged.")
        change = self.source.open_change_request(head=head, base=o.branch, title=title, body=body)
        word = provider.change_request_word
        self.ui.success(f"{'opened' if change.created else 'found open'} {word} #{change.number}: {change.url}")
        return "", change, checkout

    # ------------------------------------------------------------------ 6. cluster

    def apply_to_cluster(self, existing: dict | None, generated: _Generated, secret: dict | None) -> None:
        from controllers.runtime.apply import apply_staged

        o = self.options
        ns = o.namespace

        def show(change) -> None:
            if change.action != "unchanged":
                self.ui.line(str(change))

        try:
            if cluster.must_install(existing):
                self.ui.action(f"installing components in {ns!r} namespace")
                apply_staged(self.kube, generated.components, timeout=self.left(), on_change=show)
                self.ui.success("installed components")
            self.ui.success("reconciled components")
            if secret is not None:
                self.ui.action(f"applying source secret {ns + '/' + o.secret_name!r}")
                cluster.apply_secret(self.kube, secret)
                self.ui.success("reconciled source secret")
            self.ui.action("applying sync manifests")
            apply_staged(self.kube, generated.sync_objects, timeout=self.left(), on_change=show)
            self.ui.success("reconciled sync configuration")
        except KubeError as exc:
            raise BootstrapError(f"applying to the cluster failed: {exc.message}") from None

    # ------------------------------------------------------------------ 7. wait

    def wait_merged(self, change: ChangeRequest | None, generated: _Generated) -> str:
        """Wait (until the deadline) for the proposal to land on the branch; its head then, or ""."""
        o = self.options
        word = self.source.provider.change_request_word if self.source.provider else "pull request"
        what = f"{word} #{change.number}" if change else f"the manifests on branch {o.branch!r}"
        self.ui.waiting(f"waiting for {what} to be merged")
        checkout = None
        try:
            while True:
                if change is not None and isinstance(self.source, ProviderSource):
                    change = self.source.change_request(change.number)
                    if change.state == "closed":
                        raise BootstrapError(f"{word} #{change.number} was closed without merging: run bootstrap "
                                             "again to open a new one")
                    merged = change.state == "merged"
                else:
                    merged = True
                if merged:
                    if checkout is not None:
                        checkout.close()
                    checkout = Checkout(self.resolved.clone_url, o.branch, self.resolved.credentials,
                                        timeout=self.left()).clone()
                    if all(checkout.read(f.path) == f.content for f in generated.files
                           if not f.path.endswith(syncgen.KUSTOMIZATION_FILE)):
                        self.ui.success(f"{what} merged: branch {o.branch!r} has the manifests")
                        return checkout.head
                    if change is not None:
                        raise BootstrapError(f"{word} #{change.number} was merged, but branch {o.branch!r} does not "
                                             "hold the generated manifests: run bootstrap again")
                if time.monotonic() + 2 > self.deadline:
                    return ""
                time.sleep(2)
        finally:
            if checkout is not None:
                checkout.close()

    def what_is_left(self, change: ChangeRequest | None) -> str:
        o = self.options
        if change is not None:
            word = self.source.provider.change_request_word if self.source.provider else "pull request"
            text = (f"waiting for a merge: {word} #{change.number} ({change.url}) is not merged yet; the cluster is "
                    f"set up and applies the manifests once they are on {o.branch!r} (run bootstrap again to wait "
                    "for it)")
        else:
            text = (f"waiting for a merge: branch {o.head_branch!r} is not merged into {o.branch!r} yet; the cluster "
                    "is set up and applies the manifests once they are there (run bootstrap again to wait for it)")
        self.ui.warning(text)
        return text

    def wait_healthy(self, revision: str) -> None:
        o = self.options
        ns = o.namespace
        for kind in (cluster.GIT_REPOSITORY, cluster.KUSTOMIZATION):
            live = cluster.get_or_none(self.kube, kind, ns, ns)
            if live is not None and cluster.revision_of(kind, live) != revision:
                cluster.request_reconcile(self.kube, kind, ns, ns)
        for kind in (cluster.GIT_REPOSITORY, cluster.KUSTOMIZATION):
            self.ui.waiting(f"waiting for {kind.kind} {ns + '/' + ns!r} to be reconciled")
            cluster.wait_reconciled(self.kube, kind, ns, ns, revision, timeout=self.left())
            self.ui.success(f"{kind.kind} reconciled successfully")
        self.ui.action("confirming components are healthy")
        cluster.wait_components(self.kube, ns, o.install.all_components, timeout=self.left(),
                                on_healthy=lambda name, how: self.ui.success(f"{name}: {how}"))
        self.ui.success("all components are healthy")


def host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


__all__ = ["Bootstrap", "BootstrapError", "check_options", "BootstrapOptions", "SecretOptions", "Outcome", "UI",
           "Credentials",
           "REQUIRED_COMPONENTS", "MODES"]
