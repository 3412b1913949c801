"""Provider credentials come from the admin, never from a non-admin's spec.

A model version says where its calls go (``provider``, ``model``, ``base_url``); the key those
calls carry is attached by the gateway, from configuration an admin wrote:

- a version may name a **credential** the admin defined under ``credentials:``: the gateway
  sends it only to that credential's ``hosts``, and only a version written by an admin or by a
  member of one of its ``teams`` may name it;
- a version an admin wrote may carry its own ``api_key`` reference (``$env``/``$secret``); it is
  honoured only while the key that wrote it holds the admin role;
- anything else carries no credential.

Writes are checked when they happen (:meth:`CredentialGate.check_version`, a 400/403 naming the
field); serving checks again (:meth:`CredentialGate.api_key_for`), so a version stored before
these rules, or a credential whose hosts changed since, cannot send a key where it should not::

    gate = CredentialGate(settings, egress, author_role=keys.role_of_actor, lookup=secrets.get)
    gate.check_version(spec, principal, field="", extra_hosts=applied_hosts)   # raises APIError
    api_key = gate.api_key_for(spec, created_by="key:key_admin")   # SecretRef | None
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.adapter_paths import AdapterPaths
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers.egress import EgressPolicy, url_host
from lmdeck.settings import OWN_SECRETS, ConfigError, CredentialConfig, SecretRef, Settings

#: The team wildcard of ``credentials.<name>.teams``.
EVERY_TEAM = "*"


def host_and_port(url: str) -> tuple[str, int] | None:
    """(host, port) of an absolute URL, the port defaulting to the scheme's; None when it has no host."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = url_host(url)
    if host is None:
        return None
    return host.rstrip("."), port or (443 if parts.scheme.lower() == "https" else 80)


def host_matches(entry: str, host: str, port: int) -> bool:
    """Whether a ``hosts`` entry (``api.example.com``, ``api.example.com:8443``, ``[::1]:9100``) names
    ``host``:``port``; an entry without a port matches the host on any port (write IPv6 in brackets)."""
    parsed = host_and_port(f"//{entry.strip().lower()}")
    if parsed is None:
        return False
    name = parsed[0]
    has_port = ":" in entry.rsplit("]", 1)[-1]
    return name == host and (not has_port or parsed[1] == port)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class CredentialGate:
    """Checks who may name which credential, and attaches credentials to model versions' calls."""

    def __init__(
        self,
        settings: Settings,
        egress: EgressPolicy,
        *,
        author_role: Callable[[str | None], Role | None],
        lookup: Callable[[str], str] | None = None,
        vault: Callable[[str], str] | None = None,
        default_base_url: Callable[[str], str | None] = lambda provider: None,
        team_name: Callable[[str | None], str | None] = lambda team_id: None,
    ) -> None:
        self.credentials: dict[str, CredentialConfig] = dict(settings.credentials)
        self.egress = egress
        self.author_role = author_role
        self.lookup = lookup
        self.vault = vault
        self.default_base_url = default_base_url
        self.team_name = team_name
        self.adapters = AdapterPaths(settings.data_dir)

    def _host(self, spec: ModelVersionSpec) -> tuple[str, int] | None:
        url = spec.base_url or self.default_base_url(spec.provider)
        return host_and_port(url) if url else None

    def _sent_to(self, name: str, credential: CredentialConfig, where: tuple[str, int] | None) -> str | None:
        """Why ``credential`` may not go to ``where`` (host, port), or None when it may."""
        if where is not None and any(host_matches(entry, *where) for entry in credential.hosts):
            return None
        shown = f"{where[0]}:{where[1]}" if where else "a provider without a URL"
        return f"credential {name!r} is only sent to {', '.join(credential.hosts)}, not to {shown}"

    def check_version(
        self, spec: ModelVersionSpec, principal: Principal, *, field: str = "", extra_hosts: Iterable[str] = ()
    ) -> None:
        """Refuse a version ``principal`` may not write: its own ``api_key`` (non-admin), a credential the
        writer's team may not use or that may not go to the version's host, a ``base_url`` the egress policy
        refuses, an adapter directory that is not one of the writer's team's fine-tuning jobs (non-admin). Raises :class:`APIError` (400/403) naming the field under ``field``."""
        admin = principal.role == "admin"
        self.adapters.check_write(spec, admin=admin, field=field, team_id=principal.team_id, key_id=principal.key_id)
        if spec.api_key is not None and spec.api_key.env in OWN_SECRETS:
            raise APIError(
                400,
                f"{_join(field, 'api_key')}: {spec.api_key.env} is lmdeck's own secret and is never sent upstream",
                param=_join(field, "api_key"),
                code="invalid_value",
            )
        if spec.api_key is not None and not admin:
            raise APIError(
                403,
                f"{_join(field, 'api_key')}: only an admin may give a model version its own api_key; "
                "name a credential an admin defined under `credentials:` instead (`credential`)",
                param=_join(field, "api_key"),
                code="secret_ref_forbidden",
            )
        if spec.base_url is not None:
            self.egress.check(spec.base_url, _join(field, "base_url"), trusted=admin, extra_hosts=extra_hosts)
        if spec.credential is None:
            return
        where = _join(field, "credential")
        credential = self.credentials.get(spec.credential)
        if credential is None:
            known = ", ".join(sorted(self.credentials)) or "none"
            raise APIError(
                400,
                f"{where}: no credential {spec.credential!r} (defined: {known}); an admin defines them under "
                "`credentials:` in the config file",
                param=where,
                code="unknown_credential",
            )
        team = {principal.team_id, self.team_name(principal.team_id)} - {None}
        if not admin and EVERY_TEAM not in credential.teams and not team.intersection(credential.teams):
            whose = f"team {principal.team_id!r}" if principal.team_id else "a key without a team"
            raise APIError(
                403,
                f"{where}: credential {spec.credential!r} is not allowed for {whose}; an admin lists the teams "
                f"that may use it in `credentials.{spec.credential}.teams`",
                param=where,
                code="credential_not_allowed",
            )
        refused = self._sent_to(spec.credential, credential, self._host(spec))
        if refused is not None:
            raise APIError(
                403, f"{where}: {refused}; point `base_url` at one of them", param=where, code="credential_not_allowed"
            )

    def adapter_for(self, spec: ModelVersionSpec, created_by: str | None) -> str | None:
        """The LoRA adapter directory a stored version is served with, or None; raises :class:`ConfigError`
        when its writer was not an admin and the path now resolves outside ``<data_dir>/finetune/``."""
        return self.adapters.check_serve(spec, admin=self.author_role(created_by) == "admin", created_by=created_by)

    def api_key_for(self, spec: ModelVersionSpec, created_by: str | None) -> SecretRef | None:
        """The credential the calls of a stored version carry, or None; raises :class:`ConfigError` naming the fix
        when the version asks for one it may not have."""
        if spec.credential is not None:
            credential = self.credentials.get(spec.credential)
            if credential is None:
                raise ConfigError(
                    f"it names the credential {spec.credential!r}, which is not defined: define it under "
                    "`credentials:` (admin) or register a version that names another"
                )
            refused = self._sent_to(spec.credential, credential, self._host(spec))
            if refused is not None:
                raise ConfigError(refused)
            return credential.api_key
        if spec.api_key is None:
            return None
        if self.author_role(created_by) != "admin":
            raise ConfigError(
                f"it carries its own api_key but was written by {created_by or 'an unknown key'}, which is not an "
                "admin: register it again naming an admin-defined `credential`"
            )
        ref = SecretRef.of(spec.api_key)
        if ref.env in OWN_SECRETS:
            raise ConfigError(f"its api_key names {ref.env}, lmdeck's own secret, which is never sent upstream")
        if ref.secret is not None and self.lookup is not None:
            ref.bind(self.lookup)
        if ref.vault is not None and self.vault is not None:
            ref.bind_vault(self.vault)
        return ref
