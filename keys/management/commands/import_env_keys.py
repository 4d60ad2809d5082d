"""Development convenience (seed 002): store the ``<PROVIDER>_API_KEY`` environment
variables in one user's vault, so the app stops relying on a shared .env file."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from core.errors import ApplicationError
from keys.models import ApiKey, KeyAuditEvent, Project
from keys.providers import PROVIDERS
from keys.services import Origin, api_key_create


class Command(BaseCommand):
    help = "Import <PROVIDER>_API_KEY environment variables into a user's key vault."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The user's email address.")
        parser.add_argument("--project", help="Put the keys in this project (by name).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["user"].strip()).first()
        if user is None:
            raise CommandError(f"No user with email {options['user']!r}.")
        project = None
        if options["project"]:
            project = Project.objects.filter(owner=user, name__iexact=options["project"]).first()
            if project is None:
                raise CommandError(f"{user.email} has no project named {options['project']!r}.")
        origin = Origin(KeyAuditEvent.Source.COMMAND)
        imported = 0
        for slug, spec in PROVIDERS.items():
            secret = os.environ.get(spec.env_var, "").strip()
            if not secret or spec.needs_base_url:
                continue
            if ApiKey.objects.filter(owner=user, provider=slug, project=project).exists():
                self.stdout.write(f"  {spec.env_var}: skipped, {spec.a_key} is stored")
                continue
            try:
                api_key, check = api_key_create(
                    acting_user=user,
                    provider=slug,
                    name=f"{spec.label} (from {spec.env_var})",
                    secret=secret,
                    project=project,
                    origin=origin,
                )
            except ApplicationError as exc:
                self.stderr.write(f"  {spec.env_var}: not imported: {exc.message}")
                continue
            imported += 1
            self.stdout.write(f"  {spec.env_var}: stored as {api_key.masked_key} ({check.status})")
        self.stdout.write(self.style.SUCCESS(f"Imported {imported} key(s) for {user.email}."))
