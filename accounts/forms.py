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


class ProfileForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=150,
        required=False,
        help_text="Shown in the dashboard and given to the assistant.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )


class DeleteAccountForm(forms.Form):
    confirm_email = forms.CharField(
        label="Type your email address to confirm",
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
