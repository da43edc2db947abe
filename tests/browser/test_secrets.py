"""The Secrets tab in a real browser: add, fill in an imported name, rename, delete with confirmation, read-only view."""

import pytest

from secrets_vault import services
from tests.factories import make_function

pytestmark = pytest.mark.django_db(transaction=True)

VALUE = "br0wser-S3cret-Value-99"


@pytest.fixture
def fn(org, users):
    function = make_function(org, "vaulted")
    services.secret_create_missing(function=function, names=["IMPORTED_TOKEN"], actor=users["full_admin"])
    return function


def secrets_url(fn):
    return f"/o/{fn.organization_id}/settings/developer/functions/{fn.name}/secrets/"


def test_a_writer_manages_secrets_without_ever_seeing_a_value(sign_in, fn, artifacts_dir):
    page = sign_in("full_admin")
    page.goto(secrets_url(fn))
    assert page.get_by_test_id("secrets-missing").is_visible()
    page.screenshot(path=artifacts_dir / "1-imported-name-missing.png", full_page=True)

    # A refused addition keeps the name and never the value.
    form = page.get_by_test_id("secret-add")
    form.locator("input[name=name]").fill("bad name")
    form.locator("input[name=value]").fill(VALUE)
    form.get_by_role("button", name="Add secret").click()
    page.wait_for_load_state()
    assert "may only contain letters" in page.content()
    assert page.get_by_test_id("secret-add").locator("input[name=value]").input_value() == ""
    assert VALUE not in page.content()
    page.screenshot(path=artifacts_dir / "2-refused.png", full_page=True)

    form = page.get_by_test_id("secret-add")
    form.locator("input[name=name]").fill("API_KEY")
    form.locator("input[name=value]").fill(VALUE)
    assert form.locator("input[name=value]").get_attribute("type") == "password"
    form.get_by_role("button", name="Add secret").click()
    page.wait_for_load_state()
    assert "Added the secret “API_KEY”" in page.content()
    assert page.locator("tr[data-secret=API_KEY] .badge").inner_text() == "set"

    # The imported name gets its value inline.
    row = page.locator("tr[data-secret=IMPORTED_TOKEN]")
    row.locator("input[name=value]").fill("imported-value-123")
    row.get_by_role("button", name="Set value").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("secrets-missing").count() == 0
    page.screenshot(path=artifacts_dir / "3-all-set.png", full_page=True)

    # Rename on the edit page.
    page.locator("tr[data-secret=API_KEY]").get_by_role("link", name="Edit").click()
    page.wait_for_load_state()
    page.screenshot(path=artifacts_dir / "4-edit.png", full_page=True)
    rename = page.get_by_test_id("secret-rename")
    rename.locator("input[name=name]").fill("API_KEY_V2")
    rename.get_by_role("button", name="Rename").click()
    page.wait_for_load_state()
    assert page.locator("tr[data-secret=API_KEY_V2]").count() == 1

    # Delete asks first; dismissing keeps the secret.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("tr[data-secret=API_KEY_V2]").get_by_role("button", name="Delete").click()
    assert page.locator("tr[data-secret=API_KEY_V2]").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-secret=API_KEY_V2]").get_by_role("button", name="Delete").click()
    page.wait_for_load_state()
    assert page.locator("tr[data-secret=API_KEY_V2]").count() == 0

    assert services.secrets_for_run(function=fn) == {"IMPORTED_TOKEN": "imported-value-123"}
    for html in (page.content(),):
        assert VALUE not in html and "imported-value-123" not in html


def test_a_reader_sees_names_only(sign_in, fn, users, artifacts_dir):
    services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=users["full_admin"])
    page = sign_in("read_only_admin")
    page.goto(secrets_url(fn))
    assert page.locator("tr[data-secret=API_KEY]").count() == 1
    assert page.locator("input[name=value]").count() == 0 and page.get_by_role("button", name="Delete").count() == 0
    assert VALUE not in page.content()
    page.screenshot(path=artifacts_dir / "reader.png", full_page=True)
