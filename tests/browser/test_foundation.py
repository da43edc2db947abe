import pytest
from playwright.sync_api import expect

from accounts.models import CustomRole

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_signs_in_reaches_functions_and_creates_a_custom_role(sign_in, org, artifacts_dir):
    page = sign_in("full_admin")
    expect(page).to_have_url(f"{page.url.split('/o/')[0]}/o/{org.id}/settings/developer/functions/")
    expect(page.get_by_role("heading", name="Functions", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="List")).to_be_visible()
    expect(page.get_by_role("link", name="Storage")).to_be_visible()
    page.screenshot(path=artifacts_dir / "functions-list.png", full_page=True)

    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Roles").click()
    page.fill("input[name=name]", "Integrations team")
    page.check("input[name=functions_access][value=write]")
    page.check("input[name=storage_access][value=read]")
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_text("Created the role “Integrations team”.")).to_be_visible()
    expect(page.get_by_test_id("roles")).to_contain_text("Integrations team")
    page.screenshot(path=artifacts_dir / "roles.png", full_page=True)

    role = CustomRole.objects.get(organization=org, name="Integrations team")
    assert (role.functions_access, role.storage_access) == ("write", "read")


def test_a_refused_role_name_shows_what_to_fix(sign_in, org):
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/roles/")
    page.fill("input[name=name]", "Full Admin")
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_text("is a built-in role's name")).to_be_visible()


def test_a_full_admin_moves_the_organization_to_another_time_zone(screen, users, org, artifacts_dir):
    from accounts.models import Organization

    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/organization/")
    form = screen.get_by_test_id("organization-form")
    expect(form.get_by_label("Time zone")).to_have_value("America/Chicago")
    form.get_by_label("Time zone").select_option("Europe/Berlin")
    form.get_by_label("Name").fill("")
    form.get_by_role("button", name="Save").click()
    # Refused, nothing saved, the choice kept for the next try.
    expect(form.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    assert Organization.objects.get(pk=org.pk).timezone == "America/Chicago"
    form.get_by_label("Name").fill("Acme Fleet Europe")
    form.get_by_role("button", name="Save").click()
    expect(screen.get_by_text("Schedules now run in Europe/Berlin")).to_be_visible()
    screen.screenshot(path=artifacts_dir / f"organization-{screen.width}.png", full_page=True)
    assert (Organization.objects.get(pk=org.pk).name, Organization.objects.get(pk=org.pk).timezone) == (
        "Acme Fleet Europe", "Europe/Berlin")
