"""AES-256-GCM with a versioned key ring (ARCHITECTURE.md, "Secrets").

A ciphertext is ``kay:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>``.

``N`` is the *key id* of the ring entry that sealed it: the first four bytes of
``HMAC-SHA256(key, "kay key id")`` read as an unsigned integer. It is derived from the
key itself, not from its position in ``ENCRYPTION_KEYS``, so adding a new key in front
or removing an old one never changes which key a stored ciphertext names. The HMAC is
one-way: the id says nothing about the key.

The additional authenticated data (AAD) is supplied by the caller; the encrypted model
field (``core.fields``) binds every value to its model, field and owner, so a ciphertext
copied into another row fails to decrypt instead of revealing someone else's secret.

The ring is read from ``settings.ENCRYPTION_KEYS`` (newest first, already validated at
start-up by ``core.keyring``) on every call, so ``settings`` overrides work in tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

PREFIX = "kay"
NONCE_BYTES = 12
TAG_BYTES = 16
_TOKEN = re.compile(r"^kay:v(?P<key_id>\d{1,10}):(?P<body>[A-Za-z0-9+/=]+)$")


class CryptoError(Exception):
    """Base class; messages never contain plaintext or key material."""


class DecryptionError(CryptoError):
    """The ciphertext is malformed, was tampered with, belongs to another row, or its
    key is no longer in ``ENCRYPTION_KEYS``."""


def key_id(key: bytes) -> int:
    """The stable, public id of a ring key (see the module docstring)."""
    digest = hmac.new(key, b"kay key id", hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big")


@lru_cache(maxsize=32)
def _cipher(key: bytes) -> AESGCM:
    return AESGCM(key)


def _ring(keys: Sequence[bytes] | None = None) -> list[bytes]:
    ring = list(settings.ENCRYPTION_KEYS if keys is None else keys)
    if not ring:
        raise CryptoError("ENCRYPTION_KEYS is empty")
    return ring


def current_key_id(keys: Sequence[bytes] | None = None) -> int:
    """The id of the newest key: what :func:`encrypt` seals with."""
    return key_id(_ring(keys)[0])


def current_prefix(keys: Sequence[bytes] | None = None) -> str:
    """``kay:v<N>:`` of the newest key; a token starting with it needs no rotation."""
    return f"{PREFIX}:v{current_key_id(keys)}:"


def encrypt(plaintext: str, *, aad: bytes, keys: Sequence[bytes] | None = None) -> str:
    """Seal ``plaintext`` under the newest key, bound to ``aad``."""
    key = _ring(keys)[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(key).encrypt(nonce, plaintext.encode("utf-8"), aad)
    body = base64.b64encode(nonce + sealed).decode("ascii")
    return f"{PREFIX}:v{key_id(key)}:{body}"


def decrypt(token: str, *, aad: bytes, keys: Sequence[bytes] | None = None) -> str:
    """Open a ciphertext sealed by :func:`encrypt` with the same ``aad``."""
    match = _TOKEN.match(token) if isinstance(token, str) else None
    if match is None:
        raise DecryptionError("not a Kay ciphertext")
    wanted = int(match["key_id"])
    # Normally one key matches; a 32-bit id collision between ring keys just means
    # trying each candidate.
    candidates = [k for k in _ring(keys) if key_id(k) == wanted]
    if not candidates:
        raise DecryptionError(
            f"ciphertext was sealed with key id {wanted}, which is not in ENCRYPTION_KEYS"
        )
    try:
        raw = base64.b64decode(match["body"], validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("ciphertext is not valid base64") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("ciphertext is truncated")
    for key in candidates:
        try:
            plaintext = _cipher(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            continue
        return plaintext.decode("utf-8")
    raise DecryptionError("ciphertext failed authentication (tampered, or bound to another row)")


def reencrypt(token: str, *, aad: bytes, keys: Sequence[bytes] | None = None) -> str:
    """Open ``token`` and seal it again under the newest key, verifying the result."""
    plaintext = decrypt(token, aad=aad, keys=keys)
    fresh = encrypt(plaintext, aad=aad, keys=keys)
    if decrypt(fresh, aad=aad, keys=keys) != plaintext:  # pragma: no cover - AES-GCM bug
        raise CryptoError("re-encrypted value did not verify")
    return fresh
