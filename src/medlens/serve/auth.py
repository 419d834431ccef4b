"""Bearer tokens: who may call which model.

A token file (JSON or YAML; JSON is YAML) maps each token to the models it may use, by name
(the run folder's name), or to ``"*"`` for every model::

    {"3f9a...long random token...": ["pneumonia"], "b71c...": "*"}

The same text may be given in the environment variable ``MEDLENS_TOKENS`` instead of a file.
Tokens must be at least 16 characters without white space (``python -c "import secrets;
print(secrets.token_urlsafe(32))"`` makes a good one). Only their SHA-256 digests are kept in
memory, and no token is ever written to a log or an error message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medlens.errors import ConfigError
from medlens.serve.service_errors import ServiceError

TOKENS_ENV = "MEDLENS_TOKENS"
MIN_TOKEN_LENGTH = 16
EVERY_MODEL = "*"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """The models one token may use; ``models`` None means every model."""

    models: frozenset[str] | None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class TokenConfig:
    """Token digests (SHA-256 hex) -> their ``Grant``. Build it with ``from_mapping``."""

    grants: Mapping[str, Grant]

    @classmethod
    def from_mapping(cls, mapping: Any, source: str = TOKENS_ENV) -> TokenConfig:
        """Validate ``{token: [model, ...] | "*"}``.

        Raises:
            ConfigError: not a mapping, no tokens, a short token or one with white space, or a
                value that is neither ``"*"`` nor a list of model names. The message names the
                entry by its position, never by the token.
        """
        if not isinstance(mapping, Mapping) or not mapping:
            raise ConfigError(
                "tokens", "must map each token to a list of model names or '*'", source
            )
        grants: dict[str, Grant] = {}
        for index, (token, models) in enumerate(mapping.items(), start=1):
            key = f"tokens[{index}]"
            if (
                not isinstance(token, str)
                or len(token) < MIN_TOKEN_LENGTH
                or token != "".join(token.split())
            ):
                raise ConfigError(
                    key,
                    f"a token must be a string of at least {MIN_TOKEN_LENGTH} characters without white space",
                    source,
                )
            grants[_digest(token)] = Grant(_models(models, key, source))
        return cls(grants)

    def grant_for(self, token: str | None) -> Grant | None:
        """The token's grant, or None for a missing or unknown token."""
        return self.grants.get(_digest(token)) if token else None


def _models(value: Any, key: str, source: str) -> frozenset[str] | None:
    if value == EVERY_MODEL:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return frozenset(value)
    raise ConfigError(key, "must be '*' or a non-empty list of model names", source)


def load_token_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> TokenConfig | None:
    """The token file at ``path``, else ``$MEDLENS_TOKENS``, else None (no authentication).

    Raises:
        ConfigError: an unreadable file, text that is not JSON/YAML, or a bad entry.
    """
    environ = os.environ if environ is None else environ
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                "--tokens", f"cannot read the token file ({type(exc).__name__})", source
            ) from None
    elif environ.get(TOKENS_ENV, "").strip():
        source, text = TOKENS_ENV, environ[TOKENS_ENV]
    else:
        return None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError("tokens", "is neither JSON nor YAML", source) from None
    return TokenConfig.from_mapping(mapping, source)


def authorize(tokens: TokenConfig | None, bearer: str | None, model: str | None) -> Grant:
    """The caller's grant, checked against ``model`` when one is named.

    Raises:
        ServiceError: 401 for a missing or unknown token, 403 when the token may not use
            ``model``. Without a token config every call is allowed.
    """
    if tokens is None:
        return Grant(None)
    grant = tokens.grant_for(bearer)
    if grant is None:
        reason = (
            "a valid bearer token is required"
            if bearer
            else "an 'Authorization: Bearer <token>' header is required"
        )
        raise ServiceError(401, reason, {"WWW-Authenticate": "Bearer"})
    if model is not None and not grant.allows(model):
        raise ServiceError(
            403, "this token may not use that model; GET /v1/models lists its models"
        )
    return grant
