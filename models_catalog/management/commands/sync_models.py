"""``manage.py sync_models``: sync the model catalog from OpenRouter, a file or the backup."""

import logging
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.errors import ApplicationError
from models_catalog import services, snapshot
from models_catalog.models import ModelEndpoint

STAGES = {"endpoints": "Fetching endpoints", "write": "Writing models"}


class Command(BaseCommand):
    help = (
        "Sync models, providers and per-model endpoints from OpenRouter "
        "(or from a saved /models response, or from the shipped backup snapshot)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--from-file", type=Path, metavar="PATH", help="load a saved GET /models response"
        )
        source.add_argument(
            "--from-backup",
            action="store_true",
            help="load the shipped models-by-provider snapshot (no network)",
        )
        parser.add_argument(
            "--providers-file",
            type=Path,
            metavar="PATH",
            help="with --from-file: a /providers body",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the catalog has rows"
        )
        parser.add_argument(
            "--no-endpoints", action="store_true", help="skip the per-model /endpoints calls"
        )
        parser.add_argument("--concurrency", type=int, default=8, help="parallel /endpoints calls")
        parser.add_argument(
            "--write-backup",
            action="store_true",
            help=f"afterwards, rewrite {snapshot.BACKUP_PATH.name} from the tables",
        )
        parser.add_argument(
            "--backup-path",
            type=Path,
            default=snapshot.BACKUP_PATH,
            help="snapshot file for --from-backup and --write-backup (default: the shipped one)",
        )
        parser.add_argument(
            "--note", default="", help="with --write-backup: where the data is from"
        )
        parser.add_argument(
            "--as-of", default="", help="with --write-backup: date of the data (default: today)"
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and ModelEndpoint.objects.exists():
            self.stdout.write("The catalog already has data; nothing to do (--if-empty).")
            return
        bars: dict[str, tqdm] = {}
        if not options["no_progress"]:
            # httpx logs every request at INFO, which would scroll the progress bar away.
            logging.getLogger("httpx").setLevel(logging.WARNING)

        def progress(stage: str, done: int, total: int) -> None:
            if options["no_progress"]:
                return
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(
                    total=total, desc=STAGES.get(stage, stage), unit="model", file=self.stderr
                )
            bar.update(done - bar.n)

        try:
            summary = self._sync(options, progress)
            if options["write_backup"]:
                count = services.catalog_backup_write(
                    path=options["backup_path"],
                    source_note=options["note"],
                    data_as_of=options["as_of"],
                )
                self.stdout.write(f"Wrote {count} models to {options['backup_path']}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        finally:
            for bar in bars.values():
                bar.close()
        self._report(summary)

    def _sync(self, options: dict[str, Any], progress: services.Progress) -> services.SyncSummary:
        if options["from_backup"]:
            return services.catalog_load_backup(path=options["backup_path"], progress=progress)
        if options["from_file"]:
            return services.catalog_sync_from_files(
                models_path=options["from_file"],
                providers_path=options["providers_file"],
                progress=progress,
            )
        return services.catalog_sync(
            concurrency=options["concurrency"],
            with_endpoints=not options["no_endpoints"],
            progress=progress,
        )

    def _report(self, summary: services.SyncSummary) -> None:
        self.stdout.write(self.style.SUCCESS(f"Catalog sync from {summary.source} finished"))
        for kind, numbers in summary.counts.items():
            parts = ", ".join(f"{n} {outcome}" for outcome, n in numbers.items())
            self.stdout.write(f"  {kind:<10} {parts}")
        style = self.style.WARNING if summary.failed else self.style.SUCCESS
        self.stdout.write(style(f"  failed     {summary.failed}"))
        for failure in summary.failures[:20]:
            self.stdout.write(f"    - {failure}")
        if summary.failed > 20:
            self.stdout.write(f"    ... and {summary.failed - 20} more")
