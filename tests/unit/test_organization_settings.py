"""The organization's General page: name and time zone, read by every member, changed by Full Admins."""

import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.services import organization_update
from schedules import services as schedules
from schedules.models import Schedule
from tests.factories import make_function

pytestmark = pytest.mark.django_db

# Everyone in the organization may look (as at Members and Roles); the outsider learns nothing.
STATUS = {"full_admin": 200, "standard_admin": 200, "read_only_admin": 200, "custom_functions_read": 200,
          "custom_none": 200, "outsider": 404}


def url(org):
    return reverse("accounts:organization", kwargs={"org_id": org.id})


@pytest.mark.parametrize("role", STATUS)
def test_each_role_reads_the_page_and_only_a_full_admin_changes_it(member, org, role):
    client = member(role)
    response = client.get(url(org))
    assert response.status_code == STATUS[role]
    posted = client.post(url(org), {"name": "Renamed", "timezone": "Europe/Berlin"})
    assert posted.status_code == {"full_admin": 302, "outsider": 404}.get(role, 403)
    org.refresh_from_db()
    assert (org.name, org.timezone) == (
        ("Renamed", "Europe/Berlin") if role == "full_admin" else ("Acme Fleet", "America/Chicago"))
    if role != "outsider":
        assert ('data-testid="organization-form"' in response.content.decode()) == (role == "full_admin")


@pytest.mark.parametrize("fields, field, says", [
    ({"name": "  ", "timezone": "UTC"}, "name", "This field is required."),
    ({"name": "x" * 101, "timezone": "UTC"}, "name", "at most 100 characters"),
    ({"name": "other org", "timezone": "UTC"}, "name", "An organization named “other org” already exists"),
    ({"name": "Acme Fleet", "timezone": "Mars/Olympus_Mons"}, "timezone", "Select a valid choice"),
    ({"name": "Acme Fleet"}, "timezone", "This field is required."),
])
def test_a_bad_change_says_what_to_fix_and_saves_nothing(admin_client, org, other_org, fields, field, says):
    response = admin_client.post(url(org), fields)
    assert response.status_code == 400
    assert says in " ".join(response.context["form"].errors[field])
    org.refresh_from_db()
    assert (org.name, org.timezone) == ("Acme Fleet", "America/Chicago")


def test_the_service_refuses_what_the_form_would_not_send(org, other_org):
    with pytest.raises(ValidationError) as caught:
        organization_update(organization=org, name="OTHER ORG", timezone="Nowhere/Land")
    assert set(caught.value.message_dict) == {"name", "timezone"}
    assert organization_update(organization=org, name=" Acme Fleet ", timezone="America/Chicago") == []


def test_a_new_time_zone_moves_the_schedules_that_follow_it(admin_client, org):
    following = make_function(org, "morning")
    schedules.schedule_set(function=following, enabled=True, items=["0 9 * * *"])
    pinned = make_function(org, "pinned")
    schedules.schedule_set(function=pinned, enabled=True, timezone_name="UTC", items=["0 9 * * *"])
    pinned_before = Schedule.objects.get(function=pinned).next_occurrence_at

    response = admin_client.post(url(org), {"name": "Acme Fleet", "timezone": "Asia/Tokyo"}, follow=True)
    assert "Schedules now run in Asia/Tokyo" in response.content.decode()
    following_next = Schedule.objects.get(function=following).next_occurrence_at
    assert following_next > timezone.now()
    assert following_next.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")).hour == 9
    assert Schedule.objects.get(function=pinned).next_occurrence_at == pinned_before  # its own zone: unchanged


def test_saving_the_same_values_changes_nothing(admin_client, org):
    response = admin_client.post(url(org), {"name": "Acme Fleet", "timezone": "America/Chicago"}, follow=True)
    assert "Nothing changed." in response.content.decode()
    assert Organization.objects.get(pk=org.pk).timezone == "America/Chicago"
