from django import forms

from . import services
from .errors import InvalidKey


def _folder(value):
    try:
        return services.validate_folder(value)
    except InvalidKey as error:
        raise forms.ValidationError(error.message) from None


class BrowseQuery(forms.Form):
    """The Storage tab's query string: folder, name filter, sort and page cursor."""

    SORTS = [("name", "Name"), ("size", "Size"), ("modified", "Last modified")]

    prefix = forms.CharField(required=False, strip=False, max_length=services.MAX_KEY_BYTES)
    q = forms.CharField(required=False, strip=False, max_length=services.MAX_KEY_BYTES)
    sort = forms.ChoiceField(choices=SORTS, required=False)
    order = forms.ChoiceField(choices=[("asc", "Ascending"), ("desc", "Descending")], required=False)
    # Key cursor; with size/date sorts `at` carries the last row's size or time.
    after = forms.CharField(required=False, strip=False, max_length=services.MAX_KEY_BYTES)
    at = forms.CharField(required=False, max_length=64)

    def clean_prefix(self):
        return _folder(self.cleaned_data["prefix"])

    def clean_q(self):
        q = self.cleaned_data["q"]
        if "\\" in q:
            raise forms.ValidationError("The filter cannot contain a backslash.")
        return q

    def clean(self):
        data = super().clean()
        sort = data.get("sort") or "name"
        data["sort"] = sort
        if sort == "name":
            data["order"] = "asc"  # S3 order; folders and files page together by key
        else:
            data["order"] = data.get("order") or "desc"
        return data


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if self.required and not data:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    prefix = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    # Zero-byte files are files too (S3 stores them).
    files = MultipleFileField(allow_empty_file=True, error_messages={"required": "Choose at least one file to upload."})
    replace = forms.BooleanField(required=False, label="Replace files that already exist")

    def clean_prefix(self):
        return _folder(self.cleaned_data["prefix"])


class FolderForm(forms.Form):
    prefix = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    name = forms.CharField(label="New folder", max_length=services.MAX_KEY_BYTES, strip=True)

    def clean_prefix(self):
        return _folder(self.cleaned_data["prefix"])

    def clean_name(self):
        name = self.cleaned_data["name"]
        if name.startswith("/"):
            raise forms.ValidationError("A folder name cannot start with “/”; it is created inside the current folder.")
        name = name.rstrip("/")
        if not name:
            raise forms.ValidationError("A folder name cannot be empty.")
        return name

    def key(self):
        return self.cleaned_data["prefix"] + self.cleaned_data["name"] + "/"


class KeyForm(forms.Form):
    key = forms.CharField(strip=False, max_length=services.MAX_KEY_BYTES)


class FolderDeleteForm(forms.Form):
    prefix = forms.CharField(strip=False, max_length=services.MAX_KEY_BYTES)

    def clean_prefix(self):
        prefix = _folder(self.cleaned_data["prefix"])
        if prefix == "":
            raise forms.ValidationError("Choose a folder to delete; the top folder cannot be deleted.")
        return prefix
