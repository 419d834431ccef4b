"""The secret of the keyed hash and the pseudonyms derived from it (HMAC-SHA256).

The same key gives the same pseudonyms in every run, so later files of a patient join the
earlier ones; without the key nobody can recompute or reverse them. The secret is read from
a key file or an environment variable, kept in memory only, and never printed.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from medlens.errors import ConfigError, InputError
from medlens.privacy.options import AnonymizationOptions

MIN_KEY_BYTES = 16
UID_ROOT = "2.25."  # PS3.5 B.2: a UID from a 128-bit number needs no registered root
MAX_DATE_SHIFT_DAYS = 3650


class DeidKey:
    """The secret; ``repr`` and ``str`` never show it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(
                "key", f"the de-identification key must hold at least {MIN_KEY_BYTES} bytes"
            )
        self._secret = secret

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value``, separated by ``purpose`` so that uses never collide."""
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "DeidKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple:
        raise TypeError("a DeidKey is not pickled, so it never lands on disk")


def load_key(options: AnonymizationOptions) -> DeidKey:
    """Read the secret from ``options.key_file`` or the ``options.key_env`` variable.

    Raises:
        InputError: the key file cannot be read.
        ConfigError: no key is configured, or it is shorter than 16 bytes.
    """
    if options.key_file is not None:
        try:
            secret = options.key_file.read_bytes().strip()
        except OSError:
            raise InputError(
                options.key_file, "the de-identification key file cannot be read"
            ) from None
        return DeidKey(secret)
    value = os.environ.get(options.key_env, "")
    if not value.strip():
        raise ConfigError(
            "key",
            f"no de-identification key: set the environment variable {options.key_env} "
            "or give a key file",
        )
    return DeidKey(value.strip().encode("utf-8"))


class Pseudonymizer:
    """Keyed, deterministic replacements: UIDs, the patient pseudonym, the date shift."""

    def __init__(self, key: DeidKey) -> None:
        self._key = key
        self._uids: dict[str, str] = {}

    def uid(self, original: str) -> str:
        """``2.25.<128-bit number>`` from the keyed hash: same input UID, same output UID."""
        original = original.strip().rstrip("\x00")
        new = self._uids.get(original)
        if new is None:
            number = int.from_bytes(self._key.digest("uid", original)[:16], "big")
            new = self._uids[original] = f"{UID_ROOT}{number}"
        return new

    def patient_id(self, patient_key: str) -> str:
        """The pseudonymous Patient ID (also used as Patient's Name): ``ANON`` + 20 hex digits."""
        return "ANON" + self._key.digest("patient", patient_key)[:10].hex().upper()

    def date_shift_days(self, patient_key: str) -> int:
        """Days (1 to 3650) that this patient's dates move back; the same for all their files."""
        draw = int.from_bytes(self._key.digest("date-shift", patient_key)[:8], "big")
        return 1 + draw % MAX_DATE_SHIFT_DAYS

    def file_token(self, content_sha256: str) -> str:
        """A name for a file that lacks a SOP Instance UID, derived from its content."""
        return self.uid("file-sha256:" + content_sha256)
