"""Device login (RFC 8628) for a CLI that signs in without an Atlassian account.

The CLI asks for a device code, shows the user code, and polls. The user opens
``/dashboard/device``, signs in, checks which client asks, and approves or denies. Both
codes are stored only as SHA-256 digests.

Errors use our JSON shape with RFC 8628's names as codes: ``authorization_pending``,
``slow_down`` (the interval grows by 5 s each time, RFC 8628 §3.5), ``access_denied``,
``expired_token`` and ``invalid_grant`` (unknown or already used device code).
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import CliSession, DeviceAuthorization, User
from accounts.services import RequestOrigin
from accounts.tokens import TokenPair, cli_session_issue_tokens, cli_session_start
from core.clientip import rate_limit_ident
from core.errors import ApplicationError, RateLimited
from core.hashing import token_hash
from core.ratelimit import count_up

# RFC 8628 §6.1: a short code from an alphabet without vowels or look-alikes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5
# Wrong user codes slow guessing down rather than lock anyone out: at one attempt every few
# minutes the 20^8 code space is hopeless to search. A signed-in user's first wrong codes
# are free; past them each attempt waits 5, 10, 20 ... up to 300 s after the last wrong one.
# The client address has a larger budget of its own (many accounts on one machine), but it
# only holds back users who typed a wrong code themselves: a busy address (a shared proxy,
# an office) never stops someone typing the right code.
FREE_WRONG_CODES = 5
FREE_WRONG_CODES_PER_IP = 20
WRONG_CODE_DELAY = 5
WRONG_CODE_MAX_DELAY = 300
# The counters end this long after the last wrong code.
WRONG_CODE_WINDOW = 15 * 60
_WRONG = "accounts:device-wrong"


class DeviceFlowError(ApplicationError):
    status = 400


def user_code_normalize(raw: str) -> str:
    """``bcdf-ghjk`` and ``BCDF GHJK`` both become ``BCDFGHJK``."""
    return "".join(ch for ch in (raw or "").upper() if ch.isalnum())


def user_code_format(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


@transaction.atomic
def device_authorization_start(
    *, client_name: str, client_ip: str = ""
) -> tuple[DeviceAuthorization, str, str]:
    """A new device authorization; returns the row, the device code and the user code."""
    device_code = secrets.token_urlsafe(32)
    while True:
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        if not DeviceAuthorization.objects.filter(user_code_hash=token_hash(user_code)).exists():
            break
    now = timezone.now()
    row = DeviceAuthorization.objects.create(
        device_code_hash=token_hash(device_code),
        user_code_hash=token_hash(user_code),
        client_name=(client_name or "").strip()[:100] or "kay CLI",
        client_ip=client_ip or None,
        interval=settings.DEVICE_CODE_INTERVAL,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.DEVICE_CODE_EXPIRES_IN),
    )
    return row, device_code, user_code_format(user_code)


def device_token_poll(*, device_code: str) -> TokenPair:
    """One poll of the CLI: the token pair once approved, else an RFC 8628 error."""
    with transaction.atomic():
        row = (
            DeviceAuthorization.objects.select_for_update()
            .filter(device_code_hash=token_hash(device_code))
            .first()
        )
        if row is None:
            raise DeviceFlowError("Unknown device code.", code="invalid_grant")
        now = timezone.now()
        if row.status == DeviceAuthorization.Status.COLLECTED:
            raise DeviceFlowError("This device code was already used.", code="invalid_grant")
        if row.expires_at <= now:
            raise DeviceFlowError(
                "The device code has expired. Start the login again.", code="expired_token"
            )
        too_fast = (
            row.last_polled_at is not None
            and (now - row.last_polled_at).total_seconds() < row.interval
        )
        row.last_polled_at = now
        if too_fast:
            row.interval += SLOW_DOWN_STEP
            row.save(update_fields=["last_polled_at", "interval"])
            error = DeviceFlowError(
                f"Polling too fast: wait {row.interval} seconds between requests.",
                code="slow_down",
            )
            error.headers["Retry-After"] = str(row.interval)
            # Committed on purpose: the larger interval must stick.
        else:
            row.save(update_fields=["last_polled_at"])
            error = None
    if error is not None:
        raise error
    if row.status == DeviceAuthorization.Status.PENDING:
        raise DeviceFlowError("Waiting for the user to approve.", code="authorization_pending")
    if row.status == DeviceAuthorization.Status.DENIED:
        raise DeviceFlowError("The user denied the request.", code="access_denied")
    with transaction.atomic():
        claimed = DeviceAuthorization.objects.filter(
            pk=row.pk, status=DeviceAuthorization.Status.APPROVED
        ).update(status=DeviceAuthorization.Status.COLLECTED)
        if not claimed or row.cli_session_id is None:
            raise DeviceFlowError("This device code was already used.", code="invalid_grant")
        session = CliSession.objects.get(pk=row.cli_session_id)
        return cli_session_issue_tokens(session=session)


def _budgets(user: User, client_ip: str) -> list[tuple[str, int]]:
    """The wrong-code counters an attempt answers to, with their free wrong codes: the
    signed-in user's first, then the client address's."""
    # An IPv6 client is counted by its /64, which one host usually holds whole.
    address = rate_limit_ident(client_ip) if client_ip else ""
    return [(f"user:{user.pk}", FREE_WRONG_CODES), (f"ip:{address}", FREE_WRONG_CODES_PER_IP)]


def _take_turn(user: User, client_ip: str) -> list[str]:
    """Let this attempt be checked, or raise ``RateLimited`` with the wait. Returns the
    turns it holds, to give back when the code is right."""
    budgets = _budgets(user, client_ip)
    state = cache.get_many([f"{_WRONG}:{part}:{name}" for name, _ in budgets for part in "nt"])
    if not state.get(f"{_WRONG}:n:{budgets[0][0]}"):
        return []  # no wrong code of their own lately: always checked
    now = time.time()
    held: list[str] = []
    for name, free in budgets:
        wrong = state.get(f"{_WRONG}:n:{name}", 0)
        if wrong < free:
            continue
        delay = min(WRONG_CODE_MAX_DELAY, WRONG_CODE_DELAY * 2 ** (wrong - free))
        wait = state.get(f"{_WRONG}:t:{name}", 0) + delay - now
        # One attempt per turn (per count of wrong codes): requests sent at once cannot
        # all use the same opening.
        turn = f"{_WRONG}:turn:{name}:{wrong}"
        if wait > 0 or not cache.add(turn, 1, WRONG_CODE_WINDOW):
            cache.delete_many(held)
            retry_after = math.ceil(wait) if wait > 0 else delay
            raise RateLimited(
                f"Too many wrong codes. Wait {retry_after} seconds, then try again.",
                retry_after=retry_after,
            )
        held.append(turn)
    return held


def _count_wrong(user: User, client_ip: str) -> None:
    """Count a wrong code against the user and the address; each restarts its window."""
    for name, _ in _budgets(user, client_ip):
        # The time first: whoever reads the new count (one get_many) also reads its time.
        cache.set(f"{_WRONG}:t:{name}", time.time(), WRONG_CODE_WINDOW)
        count = f"{_WRONG}:n:{name}"
        count_up(count, WRONG_CODE_WINDOW)
        cache.touch(count, WRONG_CODE_WINDOW)


def device_authorization_find(
    *, user: User, user_code: str, client_ip: str = ""
) -> DeviceAuthorization:
    """The pending request a user code names. Wrong codes slow the next attempts down
    (see ``FREE_WRONG_CODES``); a right code is never refused for others' wrong ones."""
    held = _take_turn(user, client_ip)
    code = user_code_normalize(user_code)
    row = (
        DeviceAuthorization.objects.filter(
            user_code_hash=token_hash(code),
            status=DeviceAuthorization.Status.PENDING,
            expires_at__gt=timezone.now(),
        ).first()
        if len(code) == USER_CODE_LENGTH
        else None
    )
    if row is None:
        _count_wrong(user, client_ip)
        message = "That code is not valid or has expired. Check the code shown by your CLI."
        raise DeviceFlowError(message, code="invalid_user_code", fields={"user_code": [message]})
    cache.delete_many(held)  # the right code: approving it next needs no new turn
    return row


def device_authorization_decide(
    *, user: User, user_code: str, approve: bool, account_id: str = "", client_ip: str = ""
) -> DeviceAuthorization:
    """Approve (opening a CLI session for ``user``) or deny a pending request."""
    # Outside the transaction: a wrong code must stay counted (the cache may be a table).
    found = device_authorization_find(user=user, user_code=user_code, client_ip=client_ip)
    with transaction.atomic():
        row = DeviceAuthorization.objects.select_for_update().get(pk=found.pk)
        if row.status != DeviceAuthorization.Status.PENDING:
            raise DeviceFlowError("This request was already decided.", code="invalid_user_code")
        row.user = user
        row.decided_at = timezone.now()
        if approve:
            row.status = DeviceAuthorization.Status.APPROVED
            row.cli_session = cli_session_start(
                user=user,
                origin=CliSession.Origin.DEVICE,
                account_id=account_id,
                client_name=row.client_name,
                request_origin=RequestOrigin(ip=client_ip or None, client=row.client_name),
            )
        else:
            row.status = DeviceAuthorization.Status.DENIED
        row.save(update_fields=["user", "decided_at", "status", "cli_session"])
    return row


def device_authorizations_purge(*, now=None) -> int:
    """Delete device requests a day after they expired."""
    now = now or timezone.now()
    deleted, _ = DeviceAuthorization.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()
    return deleted
