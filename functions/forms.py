"""Forms of the catalogue's pages.

They only parse what the browser sent: every rule lives in services.py (and
functions/bundles/), so the pages and the command refuse the same things with
the same words. The one exception is the event parameters editor,
which asks validate_event_parameters which rows are wrong so it can
mark them.
"""

from django import forms

from .bundles.errors import BundleError
from .bundles.names import validate_event_parameters

BLANK_PARAMETER_ROWS = 2


class FunctionForm(forms.Form):
    """Create (with ``bundle`` and ``message``) or edit a Function's configuration."""

    name = forms.CharField(
        required=False, strip=True,
        help_text="1-35 letters, digits, '_' or '-'; it cannot be changed later.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    handler = forms.CharField(
        required=False, strip=True,
        help_text="path/to/module.function: function.main runs def main(event, context) in function.py.",
        widget=forms.TextInput(attrs={"placeholder": "function.main", "spellcheck": "false", "autocomplete": "off"}),
    )
    bundle = forms.FileField(
        required=False, label="Code package (.zip)",
        help_text="At most 50 MB (200 MB uncompressed); the zip's root is the import root.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    visible_to_customers = forms.BooleanField(
        required=False, label="Visible to customers",
        help_text="Only visible Functions can be picked as an alert's action.",
    )
    timeout_seconds = forms.IntegerField(
        required=False, label="Timeout (seconds)",
        help_text="Optional, 1-900. Leave empty for the platform's limit (15 minutes).",
        widget=forms.NumberInput(attrs={"min": 1, "max": 900, "placeholder": "900"}),
        error_messages={"invalid": "The timeout must be a whole number of seconds from 1 to 900."},
    )
    tmp_mb = forms.IntegerField(
        required=False, label="/tmp size (MB)",
        help_text="Optional, up to 10,240. Leave empty for the platform's default (512 MB). "
                  "A write past it fails with “No space left on device”.",
        widget=forms.NumberInput(attrs={"min": 1, "max": 10240, "placeholder": "512"}),
        error_messages={"invalid": "The /tmp size must be a whole number of MB."},
    )
    message = forms.CharField(
        required=False, label="Version message",
        help_text="Optional: what this code package changes.",
    )
    # Edit only: the revision the form was based on (optimistic locking).
    revision = forms.IntegerField(required=False, widget=forms.HiddenInput)
    # Create only: a zip already checked and kept by an earlier step.
    staged_sha256 = forms.CharField(required=False, widget=forms.HiddenInput)
    staged_filename = forms.CharField(required=False, widget=forms.HiddenInput)
    from_import = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, parameters=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parameters = parameters if parameters is not None else ParameterRows()

    def is_valid(self):
        valid = super().is_valid()
        return self.parameters.is_valid() and valid


class ParameterRows:
    """The event parameters editor: rows of name and value, posted as parallel lists."""

    def __init__(self, rows=None, *, blank=BLANK_PARAMETER_ROWS):
        self.rows = [{"name": r["name"], "value": r["value"], "errors": []} for r in rows or []]
        self.blank = blank
        self.errors = []

    @classmethod
    def from_post(cls, data):
        names = data.getlist("param_name")
        values = data.getlist("param_value")
        values += [""] * (len(names) - len(values))
        rows = [
            {"name": name, "value": value}
            for name, value in zip(names, values)
            if name.strip() or value  # a row left entirely empty is not a parameter
        ]
        return cls(rows)

    @classmethod
    def from_stored(cls, parameters):
        return cls(parameters, blank=BLANK_PARAMETER_ROWS if parameters else BLANK_PARAMETER_ROWS + 1)

    def pairs(self):
        return [(row["name"].strip(), row["value"]) for row in self.rows]

    def is_valid(self):
        for row in self.rows:
            row["errors"] = []
        self.errors = []
        try:
            validate_event_parameters(self.pairs())
        except BundleError as exc:
            for path, message in exc.errors:
                index = _row_index(path)
                if index is not None and index < len(self.rows):
                    self.rows[index]["errors"].append(message.rstrip(".") + ".")
                else:
                    self.errors.append(message.rstrip(".") + ".")
            return False
        return True

    def add_errors(self, messages):
        self.errors.extend(messages)

    @property
    def has_errors(self):
        return bool(self.errors or any(row["errors"] for row in self.rows))

    def rendered_rows(self):
        """The rows to render: the admin's, then a few blank ones (the page works without script)."""
        return self.rows + [{"name": "", "value": "", "errors": []} for _ in range(self.blank)]


def _row_index(path):
    if path.startswith("params[") and path.endswith("]"):
        try:
            return int(path[7:-1])
        except ValueError:
            return None
    return None


class UploadForm(forms.Form):
    bundle = forms.FileField(
        required=False, label="Code package (.zip)",
        help_text="At most 50 MB (200 MB uncompressed); the zip's root is the import root.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    handler = forms.CharField(
        required=False, strip=True,
        help_text="Leave empty to keep the current handler.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    message = forms.CharField(required=False, label="Version message", help_text="Optional.")
    deploy = forms.BooleanField(
        required=False, initial=True, label="Deploy it now",
        help_text="Unticked, the version is stored and you can deploy it later from the version list.",
    )
    # A zip already checked and kept by an earlier try (as on Create).
    staged_sha256 = forms.CharField(required=False, widget=forms.HiddenInput)
    staged_filename = forms.CharField(required=False, widget=forms.HiddenInput)


class ImportForm(forms.Form):
    bundle = forms.FileField(
        required=False, label="Bundle with import.metadata.json",
        help_text="A .zip whose root holds import.metadata.json next to the code.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
