"""Re-encrypt every stored secret under the newest key in ENCRYPTION_KEYS.

Covers every ``EncryptedTextField`` of every installed model (provider keys, OAuth tokens,
…), found through the app registry. Batches commit one by one, so an interrupted run
loses nothing and the next run carries on with the rows still on an old key.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core import crypto
from core.fields import encrypted_fields, rotate_field, stale_rows


class Command(BaseCommand):
    help = "Re-encrypt all stored secrets under the newest key in ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be re-encrypted."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = max(1, options["batch_size"])
        newest = crypto.current_key_id()
        self.stdout.write(f"Newest key: v{newest}")
        rotated = 0
        failed: dict[str, list[Any]] = {}
        for model, field in encrypted_fields():
            label = f"{model._meta.label}.{field.name}"
            todo = stale_rows(model, field).count()
            if options["dry_run"] or not todo:
                self.stdout.write(f"  {label}: {todo} to re-encrypt")
                continue
            with tqdm(
                total=todo,
                desc=label,
                unit="row",
                disable=options["no_progress"],
                file=sys.stderr,
            ) as bar:
                result = rotate_field(model, field, batch_size=batch_size, on_batch=bar.update)
            rotated += result.rotated
            if result.failed:
                failed[label] = result.failed
            self.stdout.write(
                f"  {label}: re-encrypted {result.rotated}, could not decrypt {len(result.failed)}"
            )
        if options["dry_run"]:
            return
        left = sum(stale_rows(model, field).count() for model, field in encrypted_fields())
        self.stdout.write(f"Re-encrypted {rotated} secrets; {left} still on an older key.")
        if failed:
            for label, pks in failed.items():
                shown = ", ".join(str(pk) for pk in pks[:20])
                more = f" and {len(pks) - 20} more" if len(pks) > 20 else ""
                self.stderr.write(f"  {label}: rows {shown}{more} could not be decrypted")
            raise CommandError(
                "Some secrets could not be decrypted with any key in ENCRYPTION_KEYS (tampered, "
                "or sealed with a key no longer listed). Keep the old keys until this is resolved."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Every secret is on key v{newest}. Older keys can now be removed from "
                "ENCRYPTION_KEYS."
            )
        )
