"""ApiKey.kind: "admin" for organisation admin keys (OpenAI's sk-admin-…), else "api".

Existing OpenAI keys whose mask could be an admin key's ("sk-a…") are opened once to set
their kind; one that cannot be decrypted stays "api" (its next rotation sets the kind).
"""

from django.db import migrations, models

from core import crypto

ADMIN_PREFIX = "sk-admin-"


def mark_admin_keys(apps, schema_editor):
    ApiKey = apps.get_model("keys", "ApiKey")
    secret_field = ApiKey._meta.get_field("secret")
    candidates = ApiKey.objects.filter(provider="openai", masked_key__startswith="sk-a")
    admin_ids = []
    for pk, owner_id, token in candidates.values_list("pk", "owner_id", "secret").iterator():
        try:
            plaintext = crypto.decrypt(token, aad=secret_field.aad(owner_id))
        except crypto.CryptoError:
            continue
        if plaintext.startswith(ADMIN_PREFIX):
            admin_ids.append(pk)
    ApiKey.objects.filter(pk__in=admin_ids).update(kind="admin")


class Migration(migrations.Migration):
    dependencies = [("keys", "0005_status_detail_without_save_anyway")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="kind",
            field=models.CharField(
                choices=[("api", "API key"), ("admin", "Admin key")], default="api", max_length=8
            ),
        ),
        migrations.RunPython(mark_admin_keys, migrations.RunPython.noop),
    ]
