"""The Atlassian identity used at sign-in moves from connections to accounts (issue 9).

The table already exists (made by connections 0001): take it over in the state only,
then give it this app's name.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_device_client_ip_minted_tokens_cascade"),
        ("connections", "0002_oauthstate_confirmation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AtlassianProfile",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("account_id", models.CharField(max_length=128, unique=True)),
                        ("name", models.CharField(blank=True, max_length=200)),
                        ("email", models.EmailField(blank=True, max_length=254)),
                        ("email_verified", models.BooleanField(default=False)),
                        ("picture", models.URLField(blank=True, max_length=500)),
                        ("account_type", models.CharField(blank=True, max_length=32)),
                        ("account_status", models.CharField(blank=True, max_length=32)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="atlassian_profile",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "connections_atlassianprofile"},
                ),
            ],
        ),
        migrations.AlterModelTable(name="atlassianprofile", table=None),
    ]
