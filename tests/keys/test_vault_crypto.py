"""Encryption in the vault: nothing readable at rest, rows bound to their owner, rotation."""

import base64
import os
from io import StringIO
from unittest import mock

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection

from core import crypto
from core.fields import Ciphertext, stale_rows
from keys.models import ApiKey, Project
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory, ProjectFactory


def test_no_table_holds_a_plaintext_key(alice_api, alice, fake_providers):
    secrets = [VALID["openai"], VALID["anthropic"], VALID["gemini"]]
    for n, (provider, secret) in enumerate(
        zip(["openai", "anthropic", "gemini"], secrets, strict=True)
    ):
        body = {"provider": provider, "name": f"k{n}", "key": secret}
        assert alice_api.post("/api/keys", body, format="json").status_code == 201
    # A fetch and an in-process use write audit rows too.
    from keys.access import user_api_keys

    with user_api_keys(alice) as keys:
        keys["openai"]
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(value) for value in row)
                for secret in secrets:
                    # the whole key, or any 12-character run of it
                    if secret in text or any(
                        secret[i : i + 12] in text for i in range(len(secret) - 11)
                    ):
                        found.append((table, secret[:6]))
    assert found == []


def test_a_ciphertext_moved_to_another_users_row_fails(alice, bob):
    alices = ApiKeyFactory(owner=alice)
    bobs = ApiKeyFactory(owner=bob)
    ApiKey.objects.filter(pk=bobs.pk).update(secret=Ciphertext(alices.secret))
    with pytest.raises(crypto.DecryptionError):
        ApiKey.objects.get(pk=bobs.pk).get_secret()
    assert ApiKey.objects.get(pk=alices.pk).get_secret().startswith("sk-proj-")


def test_a_tampered_ciphertext_fails(alice):
    key = ApiKeyFactory(owner=alice)
    prefix, body = key.secret.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[20] ^= 0xFF
    ApiKey.objects.filter(pk=key.pk).update(
        secret=Ciphertext(f"{prefix}:{base64.b64encode(bytes(raw)).decode()}")
    )
    with pytest.raises(crypto.DecryptionError):
        ApiKey.objects.get(pk=key.pk).get_secret()


def _ring(settings, *keys):
    settings.ENCRYPTION_KEYS = list(keys)


def test_rotation_over_1000_keys_loses_none(settings, alice, bob):
    old, new = os.urandom(32), os.urandom(32)
    _ring(settings, old)
    owners = [alice, bob]
    rows = ApiKey.objects.bulk_create(
        [
            ApiKey(
                owner=owners[i % 2],
                provider="openai",
                name=f"k{i}",
                masked_key="x",
                secret=f"sk-proj-secret-{i:04d}-abcdefghijklmnop",
            )
            for i in range(1000)
        ]
    )
    assert len(rows) == 1000
    _ring(settings, new, old)
    out = StringIO()
    call_command("rotate_encryption_key", "--batch-size", "128", "--no-progress", stdout=out)
    assert "re-encrypted 1000" in out.getvalue()
    assert "0 still on an older key" in out.getvalue()
    assert stale_rows(ApiKey, ApiKey._meta.get_field("secret")).count() == 0
    prefix = f"kay:v{crypto.key_id(new)}:"
    assert not ApiKey.objects.exclude(secret__startswith=prefix).exists()
    _ring(settings, new)  # the old key is gone: everything still opens
    secrets = {k.get_secret() for k in ApiKey.objects.all()}
    assert secrets == {f"sk-proj-secret-{i:04d}-abcdefghijklmnop" for i in range(1000)}


def test_an_interrupted_rotation_resumes(settings, alice):
    old, new = os.urandom(32), os.urandom(32)
    _ring(settings, old)
    ApiKey.objects.bulk_create(
        [
            ApiKey(owner=alice, provider="openai", name=f"k{i}", masked_key="x", secret=f"s-{i}")
            for i in range(250)
        ]
    )
    _ring(settings, new, old)
    real = crypto.reencrypt
    calls = {"n": 0}

    def dies_after_120(token, **kwargs):
        calls["n"] += 1
        if calls["n"] > 120:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C mid-batch
        return real(token, **kwargs)

    with mock.patch("core.crypto.reencrypt", dies_after_120), pytest.raises(KeyboardInterrupt):
        call_command(
            "rotate_encryption_key", "--batch-size", "50", "--no-progress", stdout=StringIO()
        )
    field = ApiKey._meta.get_field("secret")
    assert stale_rows(ApiKey, field).count() == 150  # two batches done, the third rolled back
    out = StringIO()
    call_command("rotate_encryption_key", "--batch-size", "50", "--no-progress", stdout=out)
    assert "re-encrypted 150" in out.getvalue()
    assert stale_rows(ApiKey, field).count() == 0
    _ring(settings, new)
    assert sorted(k.get_secret() for k in ApiKey.objects.all()) == sorted(
        f"s-{i}" for i in range(250)
    )


def test_rotation_refuses_to_bless_rows_it_cannot_open(settings, alice, bob):
    old, new = os.urandom(32), os.urandom(32)
    _ring(settings, old)
    good = ApiKeyFactory(owner=alice)
    moved = ApiKeyFactory(owner=bob)
    ApiKey.objects.filter(pk=moved.pk).update(secret=Ciphertext(good.secret))
    _ring(settings, new, old)
    err = StringIO()
    with pytest.raises(CommandError, match="Keep the old keys"):
        call_command("rotate_encryption_key", "--no-progress", stdout=StringIO(), stderr=err)
    assert f"rows {moved.pk}" in err.getvalue()


def test_rotation_covers_every_encrypted_field_in_the_project():
    from core.fields import encrypted_fields

    found = {(m._meta.label, f.name) for m, f in encrypted_fields()}
    assert ("keys.ApiKey", "secret") in found
    assert all(apps.get_model(label)._meta.managed for label, _ in found)


def test_admin_shows_the_mask_and_never_the_secret(client, staff, alice):
    key = ApiKeyFactory(owner=alice)
    client.force_login(staff)
    listing = client.get("/admin/keys/apikey/").content.decode()
    detail = client.get(f"/admin/keys/apikey/{key.pk}/change/").content.decode()
    for page in (listing, detail):
        assert key.masked_key in page
        assert key.get_secret() not in page
        assert str(key.secret) not in page
        assert "kay:v" not in page
    assert client.get("/admin/keys/apikey/add/").status_code == 403
    assert client.get(f"/admin/keys/apikey/{key.pk}/delete/").status_code == 403
    assert 'name="action"' not in listing  # no bulk actions, so nothing that decrypts


def test_operators_can_delete_a_user_with_a_vault_but_not_its_rows(client, staff, alice):
    """Deleting a user in the admin takes their vault along (the cascade asks each admin
    for delete permission); the vault's own admin pages still delete nothing."""
    project = ProjectFactory(owner=alice)
    key = ApiKeyFactory(owner=alice, project=project)
    client.force_login(staff)
    assert client.post(f"/admin/keys/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert (
        client.post(f"/admin/keys/project/{project.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    change = client.get(f"/admin/keys/apikey/{key.pk}/change/").content.decode()
    assert f"/admin/keys/apikey/{key.pk}/delete/" not in change
    response = client.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiKey.objects.exists() and not Project.objects.exists()
