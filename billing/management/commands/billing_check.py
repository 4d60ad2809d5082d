"""``manage.py billing_check``: every account's ledger entries must sum to its balance.
Exits non-zero and lists the accounts that do not (for a cron job or a deploy check)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.models import BillingAccount
from billing.selectors import ledger_mismatches, usd_amount


class Command(BaseCommand):
    help = "Check that every billing account's ledger entries sum to its balance."

    def handle(self, *args: Any, **options: Any) -> None:
        mismatches = ledger_mismatches()
        for row in mismatches:
            self.stderr.write(
                f"account {row.account_id} ({row.email}): balance {usd_amount(row.balance_micros)}"
                f" USD, entries sum to {usd_amount(row.entries_micros)} USD"
            )
        if mismatches:
            raise CommandError(f"{len(mismatches)} account(s) do not match their ledger.")
        count = BillingAccount.objects.count()
        self.stdout.write(f"All {count} account(s) match their ledger.")
