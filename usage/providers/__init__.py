"""One usage fetcher per provider (``usage/providers/<provider>.py``), same shape as
``keys/providers/``.

Each fetcher takes a decrypted key and a time window as arguments (it never reads the
database), calls the provider through its official SDK or ``core.http``, and returns
:class:`usage.records.BucketRow` values. Vendor failures leave it as one of three errors:

* :class:`KeyRejected` — the provider refused the key (401/403): mark it invalid and tell
  the user; retrying cannot help.
* :class:`core.errors.ProviderUnavailable` — rate limited (429), a 5xx, a timeout or no
  connection: try again later, not before ``retry_after`` seconds when the provider said.
* :class:`core.errors.ProviderError` — any other answer we cannot use (a 400, a body
  that is not the documented shape).
"""

from __future__ import annotations

from core.errors import ProviderError


class KeyRejected(ProviderError):
    """The provider refused the key itself (revoked, wrong kind, missing permissions)."""

    status = 409
    code = "key_rejected"

    def __init__(self, message: str, *, provider_status: int) -> None:
        super().__init__(message)
        self.provider_status = provider_status


__all__ = ["KeyRejected"]
