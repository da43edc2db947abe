from django import forms

from .services import MAX_NAME_LENGTH


def _value_field(label="Value"):
    # render_value=False: after a refused submission the value is never echoed back into the page.
    return forms.CharField(
        label=label,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"}),
        error_messages={"required": "Enter the secret's value."},
    )


class ValueMixin:
    def clean_value(self):
        value = self.cleaned_data["value"]
        # Django decodes form data with errors="replace": U+FFFD is what is left of bytes that were not UTF-8.
        if "\ufffd" in value:
            raise forms.ValidationError("The value is not valid UTF-8 text.")
        return value


class SecretAddForm(ValueMixin, forms.Form):
    # max_length is left to the service, whose message is the same for every entry point.
    name = forms.CharField(
        label="Name", error_messages={"required": "A secret needs a name."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "maxlength": MAX_NAME_LENGTH}),
    )
    value = _value_field()


class SecretValueForm(ValueMixin, forms.Form):
    value = _value_field("New value")


class SecretRenameForm(forms.Form):
    name = forms.CharField(
        label="New name", error_messages={"required": "A secret needs a name."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "maxlength": MAX_NAME_LENGTH}),
    )
