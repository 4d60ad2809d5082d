from django import forms


class FakeLoginForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        help_text="Any address. It is created if it does not exist; addresses at the admin "
        "domain become operators.",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=100,
        help_text="Where you will use it, e.g. “laptop CLI” or “VS Code”.",
    )


class UserCodeForm(forms.Form):
    user_code = forms.CharField(
        label="Code shown by your CLI",
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
