"""Forms of the alert pages. They only parse what the browser sent; alerts.services holds the rules."""

from django import forms

from functions.models import Function


class AlertForm(forms.Form):
    name = forms.CharField(required=False, strip=True, max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    enabled = forms.BooleanField(
        required=False, initial=True, label="Enabled",
        help_text="A disabled alert accepts no incidents (the API answers 409).",
    )
    functions = forms.ModelMultipleChoiceField(
        queryset=Function.objects.none(), required=False, label="Execute Function",
        widget=forms.CheckboxSelectMultiple,
        help_text="Each incident starts one run of every Function ticked here, with the alert's payload in its event.",
        error_messages={"invalid_choice": "One of the chosen Functions no longer exists: reload the page."},
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["functions"]
        # Any of the organization's Functions parses, so the service can say why a
        # hidden one is refused; only visible ones are offered.
        field.queryset = Function.objects.of(organization).order_by("name")
        self.offered = [f for f in field.queryset if f.visible_to_customers]
        self.hidden = [f for f in field.queryset if not f.visible_to_customers]
        field.widget.choices = [(f.pk, f.name) for f in self.offered]


class FireForm(forms.Form):
    """A test incident: what the API's body carries, typed by hand."""

    driver_id = forms.CharField(
        required=False, strip=True, label="Driver id", max_length=200,
        help_text="Digits, or empty.", widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    asset_id = forms.CharField(
        required=False, strip=True, label="Asset id", max_length=200,
        help_text="Digits, or empty.", widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    alert_incident_time = forms.CharField(
        required=False, strip=True, label="Incident time", max_length=200,
        help_text="Epoch milliseconds, optional. The same driver, asset and time within 24 hours is deduplicated.",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "placeholder": "1735689600000"}),
    )

    # The service names fields as the API does.
    SERVICE_FIELDS = {"driverId": "driver_id", "assetId": "asset_id", "alertIncidentTime": "alert_incident_time"}
