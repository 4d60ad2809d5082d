from django import forms


class FakeLoginForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        help_text="Any address. It is created if it does not exist; addresses at the admin "
        "domain become operators.",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
