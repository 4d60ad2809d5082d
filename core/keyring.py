"""Parse the ``ENCRYPTION_KEYS`` key ring (no Django imports: settings uses it)."""

import base64
import binascii

KEY_BYTES = 32


class KeyRingError(ValueError):
    """ENCRYPTION_KEYS is missing or malformed."""


def parse_key_ring(raw: str) -> list[bytes]:
    """Return the keys of a comma-separated list of base64 32-byte keys, newest first."""
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    if not entries:
        raise KeyRingError(
            "ENCRYPTION_KEYS is empty: set it to one or more base64-encoded 32-byte keys "
            "(newest first), e.g. the output of `python -m core.envfile --new-key`"
        )
    keys = []
    for position, entry in enumerate(entries, start=1):
        try:
            key = base64.b64decode(entry, validate=True)
        except (binascii.Error, ValueError):
            raise KeyRingError(f"ENCRYPTION_KEYS entry {position} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise KeyRingError(
                f"ENCRYPTION_KEYS entry {position} decodes to {len(key)} bytes; "
                f"AES-256 needs exactly {KEY_BYTES}"
            )
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise KeyRingError("ENCRYPTION_KEYS lists the same key twice")
    return keys
