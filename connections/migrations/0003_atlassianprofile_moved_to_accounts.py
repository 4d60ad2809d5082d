"""AtlassianProfile now lives in accounts (its table was renamed there)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0002_oauthstate_confirmation"),
        ("accounts", "0005_atlassianprofile_moved_from_connections"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AtlassianProfile")],
        ),
    ]
