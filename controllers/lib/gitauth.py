"""Git credentials: :class:`GitAuth` turns a URL and a Secret's data into what the ``git`` binary needs, the
way Flux's ``git.NewAuthOptions`` reads them (``username``/``password``, ``bearerToken``, ``ca.crt``,
``tls.crt``/``tls.key``, ``identity``/``known_hosts``/``password`` for SSH): credentials travel in the
environment (``GIT_CONFIG_*``) or in 0600 files of a private temporary directory, never on a command line or
in an error message. Used by the source-controller's Git client, bootstrap and image automation.
"""
from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import ssl
import tempfile
import urllib.parse
from pathlib import Path

from controllers.lib.credentials import SecretError, TLSMaterial, basic_auth, bearer_token, ssh_auth

DEFAULT_SSH_USER = "git"


class AuthOptionsError(ValueError):
    """The Secret does not hold valid credentials for the URL's transport."""


def redact_url(url: str) -> str:
    """``url`` without the password of its user info."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class GitAuth:
    """Credentials and trust for one URL, materialised in a private directory (remove with :meth:`close`)."""

    def __init__(self, url: str, data: dict[str, bytes] | None = None, *, proxy: str = ""):
        parts = urllib.parse.urlsplit(url)
        self.url, self.transport = url, parts.scheme
        data = data or {}
        self.secrets: list[str] = []
        self._dir = Path(tempfile.mkdtemp(prefix="fluxpy-git-auth-"))
        os.chmod(self._dir, 0o700)
        self.config: list[tuple[str, str]] = [
            ("protocol.version", "2"), ("protocol.allow", "never"), ("protocol.http.allow", "always"),
            ("protocol.https.allow", "always"), ("protocol.ssh.allow", "always"), ("init.defaultBranch", "master"),
            ("advice.detachedHead", "false"), ("init.templateDir", ""), ("credential.helper", ""),
            ("core.askPass", ""), ("http.lowSpeedLimit", "1"), ("http.lowSpeedTime", "30"),
        ]
        self.env: dict[str, str] = {}
        try:
            if self.transport == "ssh":
                self._ssh(parts, data)
            elif self.transport in ("http", "https"):
                self._http(parts, data)
            elif not self.transport:
                raise AuthOptionsError("no transport type set")
            else:
                raise AuthOptionsError(f"unknown transport '{self.transport}'")
            if proxy:
                self.config.append(("http.proxy", proxy))
                self.secrets.append(proxy)
        except BaseException:
            self.close()
            raise

    def _file(self, name: str, content: bytes) -> str:
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return str(path)

    def _http(self, parts: urllib.parse.SplitResult, data: dict[str, bytes]) -> None:
        token = bearer_token(data)
        username = password = ""
        if token is None:
            username, password = basic_auth(data) or ("", "")
        username = username or urllib.parse.unquote(parts.username or "")
        password = password or urllib.parse.unquote(parts.password or "")
        if not username and password:
            raise AuthOptionsError(f"invalid '{self.transport}' auth option: 'password' requires 'username' to be set")
        if token is not None and (username or password):
            raise AuthOptionsError("basic auth and bearer token cannot be set at the same time")
        if token is not None:
            self.config.append(("http.extraHeader", f"Authorization: Bearer {token}"))
            self.secrets.append(token)
        elif username or password:
            raw = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.config.append(("http.extraHeader", f"Authorization: Basic {raw}"))
            self.secrets += [p for p in (password, raw) if p]
        try:
            tls = TLSMaterial.from_secret(data)
        except SecretError as exc:
            raise AuthOptionsError(str(exc)) from None
        if tls and tls.ca:
            system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
            try:
                bundle = Path(system).read_bytes()
            except OSError:
                bundle = b""
            self.config.append(("http.sslCAInfo", self._file("ca-bundle.crt", bundle + b"\n" + tls.ca)))
        if tls and tls.cert:
            self.config += [("http.sslCert", self._file("tls.crt", tls.cert)),
                            ("http.sslKey", self._file("tls.key", tls.key or b""))]

    def _ssh(self, parts: urllib.parse.SplitResult, data: dict[str, bytes]) -> None:
        if not parts.hostname:
            raise AuthOptionsError("invalid 'ssh' auth option: 'host' is required")
        try:
            creds = ssh_auth(data)
        except SecretError as exc:
            raise AuthOptionsError(str(exc)) from None
        identity = creds.identity if creds.identity.endswith(b"\n") else creds.identity + b"\n"
        key = self._file("identity", identity)
        known_hosts = self._file("known_hosts", creds.known_hosts)
        user = urllib.parse.unquote(parts.username or "") or DEFAULT_SSH_USER
        command = ["ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", f"User={user}",
                   "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                   "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no", "-o", "PasswordAuthentication=no",
                   "-o", "KbdInteractiveAuthentication=no", "-o", "LogLevel=ERROR"]
        if creds.password:
            askpass = self._file("askpass", b'#!/bin/sh\nprintf "%s\\n" "$FLUXPY_SSH_PASSPHRASE"\n')
            os.chmod(askpass, 0o700)
            self.env.update(SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0",
                            FLUXPY_SSH_PASSPHRASE=creds.password)
            self.secrets.append(creds.password)
        else:
            command += ["-o", "BatchMode=yes"]
        self.ssh_command = command
        self.env["GIT_SSH_COMMAND"] = shlex.join(command)
        self.env["GIT_SSH_VARIANT"] = "ssh"

    def environment(self, timeout: float) -> dict[str, str]:
        """The environment of a git process: no user or system configuration, no prompts, our config."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ", "TMPDIR")}
        env.update(HOME=str(self._dir), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
                   GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_PROTOCOL_FROM_USER="0")
        env.update(self.env)
        if "GIT_SSH_COMMAND" in env:
            env["GIT_SSH_COMMAND"] += f" -o ConnectTimeout={max(1, int(timeout))}"
        for i, (key, value) in enumerate(self.config):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env["GIT_CONFIG_COUNT"] = str(len(self.config))
        return env

    def redact(self, text: str) -> str:
        """``text`` with every credential value replaced by ``***``."""
        text = re.sub(r"(\w+://)[^/@\s:]+:[^/@\s]+@", r"\1***:***@", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "GitAuth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
