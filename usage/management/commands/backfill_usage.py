"""``manage.py backfill_usage --days 30 [--user EMAIL]``: fetch the usage history of every
key that has usage to fetch (or one user's), e.g. after adding an admin key, since the
scheduled fetch only reaches two days back."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone
from tqdm import tqdm

from accounts.models import User
from core.errors import ApplicationError
from keys.models import ApiKey
from usage.selectors import FETCHABLE_KEYS
from usage.services.fetching import usage_fetch_for_key

# OpenAI's and Anthropic's usage endpoints go back further; 90 days keeps one run short
# (an hourly quarter is 13 pages per key) and covers any month compared with the last.
MAX_DAYS = 90


def fetchable_keys(user: User | None) -> QuerySet[ApiKey]:
    """Keys with usage to fetch, not known to be invalid, oldest first."""
    keys = ApiKey.objects.filter(FETCHABLE_KEYS).exclude(status=ApiKey.Status.INVALID)
    if user is not None:
        keys = keys.filter(owner=user)
    return keys.select_related("owner").order_by("pk")


class Command(BaseCommand):
    help = "Fetch the last DAYS days of usage for every key with usage to fetch (or a user's)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=30, help=f"how far back, 1 to {MAX_DAYS} (default 30)"
        )
        parser.add_argument("--user", metavar="EMAIL", help="only this user's keys")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}, not {days}.")
        user = None
        if options["user"]:
            user = User.objects.filter(email__iexact=options["user"].strip()).first()
            if user is None:
                raise CommandError(f"No user with email {options['user']!r}.")
        keys = list(fetchable_keys(user))
        whose = f" of {user.email}" if user is not None else ""
        if not keys:
            self.stdout.write(f"No keys{whose} with usage to fetch.")
            return
        if not options["no_progress"]:
            # httpx logs every request at INFO, which would scroll the progress bar away.
            logging.getLogger("httpx").setLevel(logging.WARNING)
        since = timezone.now() - timedelta(days=days)
        buckets, failures = 0, []
        with tqdm(
            keys,
            desc="Fetching usage",
            unit="key",
            file=self.stderr,
            disable=options["no_progress"],
        ) as bar:
            for api_key in bar:
                try:
                    result = usage_fetch_for_key(api_key_id=api_key.pk, since=since)
                except ApplicationError as exc:  # the provider is down or busy
                    failures.append((api_key, exc.message))
                    continue
                except Exception as exc:  # one key never stops the others
                    failures.append((api_key, f"unexpected {type(exc).__name__}"))
                    continue
                if result.status in ("ok", "skipped"):
                    buckets += result.buckets
                else:
                    failures.append((api_key, result.detail))
        done = len(keys) - len(failures)
        style = self.style.WARNING if failures else self.style.SUCCESS
        self.stdout.write(
            style(
                f"Backfilled {done} of {len(keys)} key(s){whose} over the last {days} days: "
                f"{buckets} buckets written."
            )
        )
        for api_key, detail in failures:
            self.stdout.write(f"  - {api_key} of {api_key.owner.email} (id {api_key.pk}): {detail}")
        if failures:
            raise CommandError(f"{len(failures)} key(s) failed; run the command again later.")
