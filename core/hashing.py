"""Digests under which client secrets are stored (refresh tokens, states, session ids)."""

import hashlib


def token_hash(raw: str) -> str:
    """The SHA-256 hex digest under which a client secret is stored."""
    return hashlib.sha256(raw.encode()).hexdigest()
