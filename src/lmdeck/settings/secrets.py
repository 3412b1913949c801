"""Secret references and the error a configuration that cannot be used raises.

A :class:`SecretRef` names a secret (``{"$env": "NAME"}``, ``{"$secret": "name"}`` or
``{"$vault": "path#field"}``) and is resolved only when it is needed; :data:`OWN_SECRETS` are
lmdeck's own keys, which no provider is ever sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from pydantic import PrivateAttr

from lmdeck.protocol.headers import control_problem
from lmdeck.protocol.secrets import SecretReference


class SecretRef(SecretReference):
    """A :class:`~lmdeck.protocol.secrets.SecretReference` that can be resolved to the secret it names.

    >>> SecretRef.model_validate({"$env": "OPENAI_API_KEY"})
    SecretRef(env='OPENAI_API_KEY')
    """

    _lookup: Callable[[str], str] | None = PrivateAttr(default=None)
    _vault: Callable[[str], str] | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, reference: SecretReference) -> SecretRef:
        """``reference`` (as a request or a stored version carried it), resolvable."""
        if isinstance(reference, SecretRef):
            return reference
        return cls.model_validate(reference.model_dump(by_alias=True))

    def bind(self, lookup: Callable[[str], str]) -> None:
        """Give a ``$secret`` reference the store lookup it resolves through."""
        self._lookup = lookup

    def bind_vault(self, read: Callable[[str], str]) -> None:
        """Give a ``$vault`` reference the Vault reader it resolves through (``read("path#field")``)."""
        self._vault = read

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        if self.vault is not None:
            if self._vault is None:
                raise ConfigError(
                    f'secret {{"$vault": {self.vault!r}}} needs Vault, which is not configured here: '
                    "set vault.address (or VAULT_ADDR) and VAULT_TOKEN"
                )
            return self._vault(self.vault)
        if self.secret is not None:
            if self._lookup is None:
                raise ConfigError(
                    f"secret {self.secret!r} is kept in lmdeck's store, which is not open here: "
                    'resolve it inside the gateway, or use {"$env": ...} instead'
                )
            stored = self._lookup(self.secret)
            problem = control_problem(stored)
            if problem:
                raise ConfigError(f"secret {self.secret!r} {problem}: store it again without it")
            return stored
        assert self.env is not None
        value = (os.environ if environ is None else environ).get(self.env)
        if not value:
            raise ConfigError(f"secret {self.env!r} is not set: export {self.env}=... before starting lmdeck")
        problem = control_problem(value)
        if problem:
            # Secrets are sent in headers, where a line break cannot go (it would fail every request).
            raise ConfigError(
                f"secret {self.env!r} {problem}: set it without the trailing newline or other control characters"
            )
        return value

    def __repr__(self) -> str:
        if self.vault is not None:
            return f"SecretRef(vault={self.vault!r})"
        return f"SecretRef(secret={self.secret!r})" if self.secret is not None else f"SecretRef(env={self.env!r})"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says how to fix it."""


#: lmdeck's own secrets: read once at start, never a provider credential sent upstream.
OWN_SECRETS = frozenset({"LMDECK_ADMIN_KEY", "LMDECK_MASTER_KEY"})


def not_own_secret(ref: SecretRef | None) -> SecretRef | None:
    """``ref`` unchanged, or ValueError when it names one of :data:`OWN_SECRETS`."""
    if ref is not None and ref.env in OWN_SECRETS:
        raise ValueError(f"{ref.env} is lmdeck's own secret and is never sent upstream: name the provider's key")
    return ref
