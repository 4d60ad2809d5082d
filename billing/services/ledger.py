"""The ledger's one write path: every balance change is an entry, posted under the
account's row lock in the same transaction as the new balance. Accounts, the sign-up
grant and operators' adjustments are written here too."""

from __future__ import annotations

import hashlib
import logging
import uuid

from django.db import DatabaseError, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from accounts.models import User, normalize_email
from billing.models import BillingAccount, CreditLedgerEntry, StarterGrantClaim
from billing.selectors import setting_micros
from billing.services.low_balance import low_balance_threshold_micros
from core.errors import ApplicationError
from core.prepared import PreparedQuery, PreparedUpdate, first_row
from core.prepared_insert import PreparedInsert

Kind = CreditLedgerEntry.Kind
logger = logging.getLogger(__name__)


def billing_account_for(user: User) -> BillingAccount:
    """``user``'s billing account, created with a zero balance the first time (two
    concurrent first calls get the same row: the user is unique)."""
    account, _ = BillingAccount.objects.get_or_create(user=user)
    return account


# Each model call on credits takes the lock twice and posts one entry: these statements
# are compiled once (core.prepared).
_ACCOUNT_LOCKED: PreparedQuery[BillingAccount] = PreparedQuery(
    lambda user_id: first_row(BillingAccount.objects.select_for_update().filter(user_id=user_id))
)
_POSTED: PreparedQuery[CreditLedgerEntry] = PreparedQuery(
    lambda reference: first_row(CreditLedgerEntry.objects.filter(reference=reference))
)
_BALANCE_SET = PreparedUpdate(
    lambda pk, balance_micros, updated_at: (
        BillingAccount.objects.filter(pk=pk),
        {"balance_micros": balance_micros, "updated_at": updated_at},
    )
)
_ENTRIES: PreparedInsert[CreditLedgerEntry] = PreparedInsert(CreditLedgerEntry)


def account_lock(*, user_id: int) -> BillingAccount:
    """``user_id``'s account, locked until the transaction ends (created if missing).
    Inside ``transaction.atomic`` only: every balance change goes through this lock."""
    account = _ACCOUNT_LOCKED.first(user_id=user_id)
    if account is None:
        BillingAccount.objects.get_or_create(user_id=user_id)
        account = BillingAccount.objects.select_for_update().get(user_id=user_id)
    return account


def entry_post(
    account: BillingAccount,
    *,
    kind: str,
    amount_micros: int,
    reference: str,
    description: str = "",
    created_by: User | None = None,
    metered_call_id: int | None = None,
) -> tuple[CreditLedgerEntry, bool]:
    """Add one entry to the locked ``account`` and move its balance by ``amount_micros``;
    ``(entry, True)``. An effect already posted (same ``reference``) changes nothing:
    ``(that entry, False)``. Callers check what the balance may become."""
    posted = _POSTED.first(reference=reference)
    if posted is not None:
        return posted, False
    account.balance_micros += amount_micros
    if pre_save.has_listeners(BillingAccount) or post_save.has_listeners(BillingAccount):
        account.save(update_fields=["balance_micros", "updated_at"])  # its receivers run
    else:
        account.updated_at = timezone.now()  # as save() would (auto_now)
        if not _BALANCE_SET.run(
            pk=account.pk, balance_micros=account.balance_micros, updated_at=account.updated_at
        ):
            raise DatabaseError("The account to post to is gone.")  # as save() would refuse
    entry = _ENTRIES.create(
        account=account,
        kind=kind,
        amount_micros=amount_micros,
        balance_after_micros=account.balance_micros,
        reference=reference,
        description=description[:300],
        created_by=created_by,
        metered_call_id=metered_call_id,
    )
    # Every charge that leaves the balance under the threshold queues the check, not only
    # the one crossing it: a starter grant already under the threshold never "crosses" it.
    # ``low_balance_notify`` sends once per drop however often it runs.
    if amount_micros < 0 and account.balance_micros < low_balance_threshold_micros():
        _low_balance_queue(account.user_id)
    return entry, True


def _low_balance_queue(user_id: int) -> None:
    from billing.tasks import low_balance_notify

    transaction.on_commit(lambda: low_balance_notify.delay(user_id))


def _email_digest(email: str) -> str:
    """The address an email reaches, as a digest: case and a ``+tag`` do not make another
    one (``Ann+2@x.com`` is ``ann@x.com``)."""
    local, _, domain = normalize_email(email).rpartition("@")
    return hashlib.sha256(f"{local.split('+', 1)[0]}@{domain}".encode()).hexdigest()


def credits_grant_starter(user: User) -> CreditLedgerEntry | None:
    """Credit ``BILLING_STARTER_GRANT_USD`` to a new user, once ever (its reference is
    the user's id) and once per email address, also after that user was deleted; None
    when the setting is 0 or the address had it already."""
    amount = setting_micros("BILLING_STARTER_GRANT_USD")
    if amount <= 0:
        return None
    with transaction.atomic():
        account = account_lock(user_id=user.pk)
        reference = f"grant:signup:{user.pk}"
        if user.email and not CreditLedgerEntry.objects.filter(reference=reference).exists():
            _, first = StarterGrantClaim.objects.get_or_create(
                email_digest=_email_digest(user.email)
            )
            if not first:
                logger.info("user %s: this address had the starter grant before", user.pk)
                return None
        entry, _ = entry_post(
            account,
            kind=Kind.GRANT,
            amount_micros=amount,
            reference=reference,
            description="Starter credits",
        )
    return entry


def credits_adjust(
    *, account: BillingAccount, amount_micros: int, reason: str, acting_user: User
) -> CreditLedgerEntry:
    """An operator's credit (positive) or debit (negative) with their reason, recorded
    with their name. A debit may not take the balance below zero."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why.", fields={"reason": ["This field is required."]})
    if not amount_micros:
        raise ApplicationError(
            "An adjustment moves the balance.", fields={"amount": ["Enter a non-zero amount."]}
        )
    with transaction.atomic():
        locked = account_lock(user_id=account.user_id)
        if locked.balance_micros + amount_micros < 0:
            raise ApplicationError(
                "That debit is more than the balance.",
                fields={"amount": ["At most the current balance."]},
            )
        entry, _ = entry_post(
            locked,
            kind=Kind.ADJUSTMENT,
            amount_micros=amount_micros,
            reference=f"adjust:{uuid.uuid4()}",
            description=f"{reason} (by {acting_user.name.strip() or 'Kay support'})",
            created_by=acting_user,
        )
    logger.info(
        "operator %s adjusted account %s by %s µ$", acting_user.pk, account.pk, amount_micros
    )
    account.refresh_from_db()
    return entry
