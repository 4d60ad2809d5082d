"""What every page form shares: showing a service's error where the user will read it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django import forms

from core.errors import ApplicationError


def add_application_error(
    form: forms.Form, error: ApplicationError, *, field: str | None = None
) -> None:
    """Show a service error on the form: on the fields it names, else on ``field`` (or
    above the form). A refusal that is not about the input (a limit, a conflict) also
    shows its message, since the field messages alone would not say what happened."""
    placed = False
    for name, messages in (error.fields or {}).items():
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
            placed = True
    if not placed or error.status != 400:
        form.add_error(field, error.message)


@contextmanager
def service_errors_on(form: forms.Form) -> Iterator[None]:
    """Run a page's service call: an ``ApplicationError`` it raises ends the block and is
    shown on ``form`` (see :func:`add_application_error`), which is then invalid, so the
    view goes on to render the form again."""
    try:
        yield
    except ApplicationError as exc:
        add_application_error(form, exc)
