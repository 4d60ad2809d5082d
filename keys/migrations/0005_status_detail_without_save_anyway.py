"""Stored status details of keys that could not be checked ended with "You can save it
anyway." — advice for the form, wrong once the key is saved. Drop it from existing rows."""

from django.db import migrations
from django.db.models import Value
from django.db.models.functions import Replace

SUFFIX = " You can save it anyway."


def drop_suffix(apps, schema_editor):
    ApiKey = apps.get_model("keys", "ApiKey")
    ApiKey.objects.filter(status_detail__endswith=SUFFIX).update(
        status_detail=Replace("status_detail", Value(SUFFIX), Value(""))
    )


class Migration(migrations.Migration):
    dependencies = [("keys", "0004_audit_counted_refusals")]

    operations = [migrations.RunPython(drop_suffix, migrations.RunPython.noop)]
