"""``EncryptedTextField``: a text column that only ever holds ``core.crypto`` ciphertext.

Usage::

    class ApiKey(models.Model):
        owner = models.ForeignKey(User, on_delete=models.CASCADE)
        secret = EncryptedTextField(aad_owner_field="owner")

    key = ApiKey(owner=alice, secret="sk-live-…")   # a plain str is plaintext…
    key.save()                                     # …sealed in pre_save
    key.secret                                     # Ciphertext("kay:v…:…"), never plaintext
    decrypt_field(key, "secret")                   # "sk-live-…"

How it decides:

* Values read from the database (and values it sealed) are :class:`Ciphertext`, a
  ``str`` subclass. A plain ``str`` on an instance is plaintext waiting to be sealed;
  ``pre_save`` (``save()``, ``create()``, ``bulk_create()``) encrypts it, so a secret
  is never written in the clear. Unchanged rows are not re-encrypted on save.
* ``queryset.update()`` / ``bulk_update()`` cannot know the row, so they accept only
  :class:`Ciphertext`; a plain string raises ``TypeError`` instead of being stored.
* Decryption is explicit (:func:`decrypt_field` or ``field.decrypt(instance)``): reading
  the attribute never decrypts, so templates, admin and logs cannot leak by accident.
* The additional authenticated data is ``kay|<app_label.model>|<field>|<owner id>``:
  a ciphertext moved to another model, field or owner's row fails to decrypt. The row's
  own primary key is not in it because it is unknown before the first insert. Changing
  a row's owner therefore requires setting the secret again: ``save()`` of a row whose
  owner changed while it still holds the old ciphertext raises ``CryptoError`` instead of
  writing a row nobody can decrypt.

Rotation (``manage.py rotate_encryption_key``) finds every such field through the app
registry (:func:`encrypted_fields`) and uses :func:`rotate_field`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models.signals import post_init, pre_save

from core import crypto


class Ciphertext(str):
    """A value that is already sealed (read from the database or just encrypted)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Ciphertext({self[: self.find(':', 4) + 1]}…)"


class EncryptedTextField(models.TextField):
    description = "Text encrypted with AES-256-GCM (core.crypto), bound to its row's owner"

    def __init__(self, *args: Any, aad_owner_field: str | None = "owner", **kwargs: Any) -> None:
        self.aad_owner_field = aad_owner_field
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.aad_owner_field != "owner":
            kwargs["aad_owner_field"] = self.aad_owner_field
        if kwargs.get("editable") is False:
            del kwargs["editable"]
        else:
            kwargs["editable"] = True
        return name, path, args, kwargs

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False
    ) -> None:
        super().contribute_to_class(cls, name, private_only=private_only)
        if self.aad_owner_field is not None and not cls._meta.abstract:
            post_init.connect(self._remember_owner, sender=cls, weak=False)
            pre_save.connect(self._refuse_owner_change, sender=cls, weak=False)

    # --- the owner a stored ciphertext is bound to ----------------------------------------
    def _sealed_for_key(self) -> str:
        return f"_kay_{self.attname}_sealed_for"

    def _remember_owner(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        # __dict__, not getattr: a deferred owner column must not cost a query.
        owner_id = instance.__dict__.get(self.owner_attname() or "")
        instance.__dict__[self._sealed_for_key()] = owner_id

    def _refuse_owner_change(
        self, sender: Any, instance: models.Model, update_fields: Any = None, **kwargs: Any
    ) -> None:
        value = instance.__dict__.get(self.attname)
        if not isinstance(value, Ciphertext):
            return  # None, or plaintext that pre_save seals for the current owner
        sealed_for = instance.__dict__.get(self._sealed_for_key())
        owner_attname = self.owner_attname()
        if sealed_for is None or owner_attname is None:
            return
        if update_fields is not None and self.aad_owner_field not in update_fields:
            return
        if instance.__dict__.get(owner_attname) != sealed_for:
            raise crypto.CryptoError(
                f"{self.model_label()}: the row's {self.aad_owner_field} changed; set "
                f"{self.name} again so it is sealed for the new {self.aad_owner_field}"
            )

    # --- database round trip --------------------------------------------------------------
    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Ciphertext | None:
        return None if value is None else Ciphertext(value)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = getattr(model_instance, self.attname)
        if value is None or isinstance(value, Ciphertext):
            return value
        if not isinstance(value, str):
            raise TypeError(f"{self.model_label()}: secrets must be str, not {type(value)}")
        sealed = Ciphertext(crypto.encrypt(value, aad=self.aad_for(model_instance)))
        setattr(model_instance, self.attname, sealed)
        self._remember_owner(type(model_instance), model_instance)
        return sealed

    def get_prep_value(self, value: Any) -> Any:
        if value is None or isinstance(value, Ciphertext):
            return None if value is None else str(value)
        if hasattr(value, "resolve_expression"):
            return value
        raise TypeError(
            f"{self.model_label()}: a plaintext secret can only be written through "
            "Model.save()/create(), which seal it for its row; update() and bulk_update() "
            "accept Ciphertext only"
        )

    # --- associated data ------------------------------------------------------------------
    def model_label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def owner_attname(self) -> str | None:
        if self.aad_owner_field is None:
            return None
        return self.model._meta.get_field(self.aad_owner_field).attname  # type: ignore[union-attr]

    def aad(self, owner_id: Any) -> bytes:
        owner = "" if owner_id is None else str(owner_id)
        return f"kay|{self.model._meta.label_lower}|{self.name}|{owner}".encode()

    def aad_for(self, instance: models.Model) -> bytes:
        attname = self.owner_attname()
        if attname is None:
            return self.aad(None)
        owner_id = getattr(instance, attname)
        if owner_id is None:
            raise crypto.CryptoError(
                f"{self.model_label()}: set {self.aad_owner_field} before saving a secret"
            )
        return self.aad(owner_id)

    # --- reading --------------------------------------------------------------------------
    def decrypt(self, instance: models.Model) -> str | None:
        """The plaintext of this field on ``instance`` (raises ``DecryptionError``)."""
        value = getattr(instance, self.attname)
        if value is None:
            return None
        if not isinstance(value, Ciphertext):
            return str(value)  # assigned in this process and not saved yet
        return crypto.decrypt(value, aad=self.aad_for(instance))


def decrypt_field(instance: models.Model, name: str) -> str | None:
    """The plaintext of ``instance.<name>``, an :class:`EncryptedTextField`."""
    model_field = instance._meta.get_field(name)
    if not isinstance(model_field, EncryptedTextField):
        raise TypeError(f"{name} is not an EncryptedTextField")
    return model_field.decrypt(instance)


# --- Key rotation over every model -------------------------------------------------------


def encrypted_fields() -> Iterator[tuple[type[models.Model], EncryptedTextField]]:
    """Every concrete (model, field) pair in the project that stores encrypted values."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField):
                yield model, model_field


def stale_rows(model: type[models.Model], model_field: EncryptedTextField) -> models.QuerySet:
    """Rows whose value is not sealed with the newest key (what rotation must visit)."""
    return (
        model._base_manager.exclude(**{f"{model_field.attname}__isnull": True})
        .exclude(**{f"{model_field.attname}__startswith": crypto.current_prefix()})
        .order_by("pk")
    )


@dataclass
class RotationResult:
    rotated: int = 0
    failed: list[Any] = field(default_factory=list)  # primary keys, never values


def rotate_field(
    model: type[models.Model],
    model_field: EncryptedTextField,
    *,
    batch_size: int = 500,
    on_batch: Callable[[int], object] | None = None,
) -> RotationResult:
    """Re-seal every stale value of one field under the newest key.

    Each batch is its own transaction with its rows locked, so an interruption loses
    nothing: finished batches are on the new key, the rest are untouched and the next
    run picks them up (only stale rows are visited). Every new value is decrypted and
    compared before it is written. Rows that cannot be decrypted are skipped and listed.
    """
    result = RotationResult()
    owner_attname = model_field.owner_attname()
    columns = ["pk", model_field.attname] + ([owner_attname] if owner_attname else [])
    last_pk: Any = None
    while True:
        with transaction.atomic():
            batch_qs = stale_rows(model, model_field)
            if last_pk is not None:
                batch_qs = batch_qs.filter(pk__gt=last_pk)
            rows = list(batch_qs.select_for_update().values_list(*columns)[:batch_size])
            if not rows:
                return result
            updated = []
            for row in rows:
                pk, token = row[0], row[1]
                owner_id = row[2] if owner_attname else None
                try:
                    fresh = crypto.reencrypt(token, aad=model_field.aad(owner_id))
                except crypto.CryptoError:
                    result.failed.append(pk)
                    continue
                updated.append(model(pk=pk, **{model_field.attname: Ciphertext(fresh)}))
            if updated:
                model._base_manager.bulk_update(updated, [model_field.name])
            last_pk = rows[-1][0]
        result.rotated += len(updated)
        if on_batch is not None:
            on_batch(len(rows))
