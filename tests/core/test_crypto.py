"""core.crypto (AES-256-GCM key ring) and core.fields.EncryptedTextField."""

import base64
import os

import pytest
from django.conf import settings
from django.db import connection, models

from core import crypto
from core.fields import (
    Ciphertext,
    EncryptedTextField,
    decrypt_field,
    encrypted_fields,
    rotate_field,
    stale_rows,
)
from tests.accounts.factories import UserFactory

AAD = b"kay|tests.thing|secret|1"


def new_key() -> bytes:
    return os.urandom(32)


# --- crypto primitives -------------------------------------------------------------------


def test_round_trip_and_format():
    token = crypto.encrypt("sk-live-abcdef", aad=AAD)
    assert token.startswith(crypto.current_prefix())
    assert token.startswith(f"kay:v{crypto.key_id(settings.ENCRYPTION_KEYS[0])}:")
    assert "sk-live" not in token
    assert crypto.decrypt(token, aad=AAD) == "sk-live-abcdef"


def test_each_encryption_uses_a_fresh_nonce():
    assert crypto.encrypt("same", aad=AAD) != crypto.encrypt("same", aad=AAD)


def test_tampered_ciphertext_fails():
    token = crypto.encrypt("sk-live-abcdef", aad=AAD)
    prefix, body = token.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 0x01
    tampered = f"{prefix}:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered, aad=AAD)


def test_other_associated_data_fails():
    token = crypto.encrypt("sk-live-abcdef", aad=AAD)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, aad=b"kay|tests.thing|secret|2")


@pytest.mark.parametrize("garbage", ["", "sk-live", "kay:v1:", "kay:vx:AAAA", "kay:v1:AAAA"])
def test_malformed_tokens_fail_cleanly(garbage):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(garbage, aad=AAD)


def test_key_id_survives_adding_and_removing_keys(settings):
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("secret", aad=AAD)
    settings.ENCRYPTION_KEYS = [new, old]  # a new key goes in front
    assert crypto.decrypt(token, aad=AAD) == "secret"
    assert crypto.encrypt("x", aad=AAD).startswith(f"kay:v{crypto.key_id(new)}:")
    fresh = crypto.reencrypt(token, aad=AAD)
    settings.ENCRYPTION_KEYS = [new]  # the old key is removed after rotation
    assert crypto.decrypt(fresh, aad=AAD) == "secret"
    with pytest.raises(crypto.DecryptionError, match="not in ENCRYPTION_KEYS"):
        crypto.decrypt(token, aad=AAD)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "ENCRYPTION_KEYS is empty"),
        ("not base64!", "entry 1 is not valid base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_a_malformed_key_ring_fails_with_a_clear_message(raw, message):
    from core.keyring import KeyRingError, parse_key_ring

    with pytest.raises(KeyRingError, match=message):
        parse_key_ring(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "ENCRYPTION_KEYS is empty"),
        ("not base64!", "entry 1 is not valid base64"),
        (base64.b64encode(b"short").decode(), "entry 1 decodes to 5 bytes"),
    ],
)
def test_the_process_refuses_to_start_with_a_bad_key_ring(raw, message):
    """Not just the parser: settings must stop the process (gunicorn and Celery both call
    django.setup()) before it serves anything or writes a secret it could not read back."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ENCRYPTION_KEYS": raw, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_key_id_does_not_reveal_the_key():
    key = new_key()
    assert str(crypto.key_id(key)) not in base64.b64encode(key).decode()
    assert crypto.key_id(key) == crypto.key_id(bytes(key))
    assert crypto.key_id(key) != crypto.key_id(new_key())


# --- the model field ---------------------------------------------------------------------


class Vaulted(models.Model):
    """A model that exists only in these tests (unmanaged: rotation of the real DB skips it)."""

    # DO_NOTHING and no constraint: this model is in the app registry for the whole test
    # run, but its table exists only during these tests; deleting a user elsewhere must
    # not try to cascade into it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    secret = EncryptedTextField()
    note = EncryptedTextField(null=True, blank=True)

    class Meta:
        app_label = "core"
        managed = False
        db_table = "test_core_vaulted"

    def __str__(self) -> str:
        return f"vaulted {self.pk}"


@pytest.fixture
def vaulted_table(transactional_db):
    with connection.schema_editor() as editor:
        editor.create_model(Vaulted)
    yield Vaulted
    with connection.schema_editor() as editor:
        editor.delete_model(Vaulted)


def raw_secret(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM test_core_vaulted WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_field_encrypts_on_save_and_decrypts_explicitly(vaulted_table):
    alice = UserFactory()
    row = Vaulted.objects.create(owner=alice, secret="sk-live-abcdef")
    stored = raw_secret(row.pk)
    assert stored.startswith("kay:v") and "sk-live" not in stored
    assert isinstance(row.secret, Ciphertext) and row.secret == stored

    loaded = Vaulted.objects.get(pk=row.pk)
    assert isinstance(loaded.secret, Ciphertext)
    assert "sk-live" not in repr(loaded.secret)
    assert decrypt_field(loaded, "secret") == "sk-live-abcdef"
    assert decrypt_field(loaded, "note") is None


def test_saving_an_unchanged_row_does_not_reencrypt(vaulted_table):
    row = Vaulted.objects.create(owner=UserFactory(), secret="sk-1")
    before = raw_secret(row.pk)
    Vaulted.objects.get(pk=row.pk).save()
    assert raw_secret(row.pk) == before


def test_ciphertext_copied_to_another_owners_row_fails(vaulted_table):
    alice, bob = UserFactory(), UserFactory()
    alices = Vaulted.objects.create(owner=alice, secret="alice-secret")
    bobs = Vaulted.objects.create(owner=bob, secret="bob-secret")
    Vaulted.objects.filter(pk=bobs.pk).update(secret=Vaulted.objects.get(pk=alices.pk).secret)
    with pytest.raises(crypto.DecryptionError):
        decrypt_field(Vaulted.objects.get(pk=bobs.pk), "secret")
    # ...and into another field of the same row.
    Vaulted.objects.filter(pk=alices.pk).update(note=Vaulted.objects.get(pk=alices.pk).secret)
    with pytest.raises(crypto.DecryptionError):
        decrypt_field(Vaulted.objects.get(pk=alices.pk), "note")


def test_moving_a_row_to_another_owner_without_resealing_is_refused(vaulted_table):
    """The secret is bound to its owner: saving a new owner while keeping the old
    ciphertext would leave a row nobody can decrypt, so it fails loudly instead."""
    alice, bob = UserFactory(), UserFactory()
    row = Vaulted.objects.create(owner=alice, secret="alice-secret")
    loaded = Vaulted.objects.get(pk=row.pk)
    loaded.owner = bob
    with pytest.raises(crypto.CryptoError, match="owner"):
        loaded.save()
    with pytest.raises(crypto.CryptoError, match="owner"):
        loaded.save(update_fields=["owner"])
    assert decrypt_field(Vaulted.objects.get(pk=row.pk), "secret") == "alice-secret"
    # Setting the secret again seals it for the new owner.
    loaded.secret = "bob-secret"
    loaded.note = None
    loaded.save()
    assert decrypt_field(Vaulted.objects.get(pk=row.pk), "secret") == "bob-secret"
    # Other saves of the row are unaffected.
    again = Vaulted.objects.get(pk=row.pk)
    again.save()
    assert decrypt_field(Vaulted.objects.get(pk=row.pk), "secret") == "bob-secret"


def test_update_with_plaintext_is_refused(vaulted_table):
    row = Vaulted.objects.create(owner=UserFactory(), secret="sk-1")
    with pytest.raises(TypeError, match="Ciphertext only"):
        Vaulted.objects.filter(pk=row.pk).update(secret="plaintext!")
    assert decrypt_field(Vaulted.objects.get(pk=row.pk), "secret") == "sk-1"


def test_bulk_create_encrypts(vaulted_table):
    owner = UserFactory()
    rows = Vaulted.objects.bulk_create([Vaulted(owner=owner, secret=f"s{i}") for i in range(3)])
    for i, row in enumerate(Vaulted.objects.order_by("pk")):
        assert "kay:v" in raw_secret(row.pk)
        assert decrypt_field(row, "secret") == f"s{i}"
    assert len(rows) == 3


def test_rotation_moves_every_row_to_the_newest_key(vaulted_table, settings):
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]
    owner = UserFactory()
    Vaulted.objects.bulk_create([Vaulted(owner=owner, secret=f"s{i}") for i in range(25)])
    settings.ENCRYPTION_KEYS = [new, old]
    field = Vaulted._meta.get_field("secret")
    assert stale_rows(Vaulted, field).count() == 25
    result = rotate_field(Vaulted, field, batch_size=10)
    assert result.rotated == 25 and result.failed == []
    assert stale_rows(Vaulted, field).count() == 0
    settings.ENCRYPTION_KEYS = [new]
    assert sorted(decrypt_field(r, "secret") for r in Vaulted.objects.all()) == sorted(
        f"s{i}" for i in range(25)
    )


def test_rotation_skips_and_reports_undecryptable_rows(vaulted_table, settings):
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]
    alice, bob = UserFactory(), UserFactory()
    good = Vaulted.objects.create(owner=alice, secret="good")
    moved = Vaulted.objects.create(owner=bob, secret="bob")
    Vaulted.objects.filter(pk=moved.pk).update(secret=good.secret)
    settings.ENCRYPTION_KEYS = [new, old]
    result = rotate_field(Vaulted, Vaulted._meta.get_field("secret"), batch_size=1)
    assert result.rotated == 1 and result.failed == [moved.pk]


def test_encrypted_fields_discovers_managed_models_only():
    found = {(m._meta.label_lower, f.name) for m, f in encrypted_fields()}
    assert ("core.vaulted", "secret") not in found
