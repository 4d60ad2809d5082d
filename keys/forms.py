"""Dashboard forms. The secret field never renders its value back."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import User
from keys.models import Project
from keys.providers import CHOICES, PROVIDERS, Provider


class _ProjectChoice(forms.ModelChoiceField):
    def __init__(self, owner: User, **kwargs: Any) -> None:
        super().__init__(
            queryset=Project.objects.filter(owner=owner),
            required=False,
            empty_label="No project",
            **kwargs,
        )


class ApiKeyForm(forms.Form):
    provider = forms.ChoiceField(choices=CHOICES)
    name = forms.CharField(max_length=100, help_text="So you can tell your keys apart.")
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False)
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=300,
        label="Base URL",
        help_text="The server's API root, e.g. https://llm.example.com/v1",
    )
    key = forms.CharField(
        label="API key",
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="Checked with the provider, then encrypted. You will only see it masked.",
    )
    is_default = forms.BooleanField(
        required=False, label="Make this the default key for its provider in the project"
    )

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"] = _ProjectChoice(owner)

    def hint_provider(self) -> Provider:
        """The provider whose format hint the form shows (the chosen one, else the first)."""
        return PROVIDERS.get(str(self["provider"].value() or ""), next(iter(PROVIDERS.values())))


class ApiKeyEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False)
    is_default = forms.BooleanField(required=False, label="Default key for its provider")

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"] = _ProjectChoice(owner)


class RotateForm(forms.Form):
    key = forms.CharField(
        label="New secret",
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Same key record, name and history; the old secret is replaced.",
    )


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
