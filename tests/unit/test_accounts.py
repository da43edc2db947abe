import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.access import Area, access_level
from accounts.models import Access, BuiltinRole, CustomRole, Membership, Organization, User
from tests.conftest import READ_STATUS, ROLES


def url(name, org, **kwargs):
    return reverse(name, kwargs={"org_id": org.id, **kwargs})


# --- the access layer ---------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in ROLES if r != "outsider"])
def test_each_role_gets_the_access_the_contract_gives_it(users, org, role):
    membership = Membership.objects.get(user=users[role], organization=org)
    assert (access_level(membership, Area.FUNCTIONS), access_level(membership, Area.STORAGE)) == ROLES[role]


def test_only_full_admins_may_administer(users, org):
    levels = {
        role: access_level(Membership.objects.get(user=users[role], organization=org), Area.ADMINISTRATION)
        for role in ROLES
        if role != "outsider"
    }
    assert levels.pop("full_admin") == Access.WRITE
    assert set(levels.values()) == {Access.READ}


# --- pages, for every role ------------------------------------------------------

FUNCTIONS_PAGE = READ_STATUS
STORAGE_PAGE = {**READ_STATUS, "custom_functions_read": 403}
ADMIN_PAGES = {role: (404 if role == "outsider" else 200) for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "page,expected",
    [("functions:list", FUNCTIONS_PAGE), ("functions:storage", STORAGE_PAGE),
     ("accounts:members", ADMIN_PAGES), ("accounts:roles", ADMIN_PAGES)],
)
def test_each_page_answers_each_role_as_its_permissions_say(member, org, role, page, expected):
    response = member(role).get(url(page, org))
    assert response.status_code == expected[role]
    if expected[role] == 403:
        assert b"does not allow you" in response.content


def test_anonymous_users_are_sent_to_sign_in(client, org):
    response = client.get(url("functions:list", org))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_unknown_organization_is_a_404(member):
    assert member("full_admin").get("/o/999999/settings/developer/functions/").status_code == 404


def test_the_sidebar_hides_storage_from_a_role_without_storage_access(member, org):
    body = member("custom_functions_read").get(url("functions:list", org)).content.decode()
    assert "Storage</a>" not in body and ">List</a>" in body


def test_home_redirects_to_the_first_organizations_functions(member, org):
    response = member("full_admin").get("/")
    assert response.status_code == 302 and response["Location"] == url("functions:list", org)


def test_home_sends_a_role_without_functions_to_members(member, org):
    assert member("custom_none").get("/", follow=True).request["PATH_INFO"] == url("accounts:members", org)


def test_the_header_lets_a_user_switch_between_organizations(users, org, other_org, member):
    Membership.objects.create(user=users["full_admin"], organization=other_org, builtin_role=BuiltinRole.READ_ONLY_ADMIN)
    body = member("full_admin").get(url("functions:list", org)).content.decode()
    assert "Other Org" in body and reverse("org_home", kwargs={"org_id": other_org.id}) in body


# --- sign-in ---------------------------------------------------------------------


def test_sign_in_uses_the_email_as_username_case_insensitively(client, users):
    response = client.post("/login/", {"username": "FULL_ADMIN@example.com", "password": "correct-horse-battery-staple"})
    assert response.status_code == 302


def test_a_wrong_password_is_refused_with_a_message(client, users):
    response = client.post("/login/", {"username": "full_admin@example.com", "password": "nope"})
    assert response.status_code == 200 and b"Please enter a correct" in response.content


# --- roles ------------------------------------------------------------------------

ROLE_FORM = {"name": "Integrators", "description": "API people", "functions_access": "write", "storage_access": "read"}


@pytest.mark.parametrize("role", ROLES)
def test_only_a_full_admin_creates_custom_roles(member, org, role):
    response = member(role).post(url("accounts:roles", org), ROLE_FORM)
    created = CustomRole.objects.filter(organization=org, name="Integrators").exists()
    if role == "full_admin":
        assert response.status_code == 302 and created
    else:
        assert response.status_code == (404 if role == "outsider" else 403) and not created


def test_a_custom_role_grants_exactly_what_it_sets(admin_client, org, users):
    admin_client.post(url("accounts:roles", org), ROLE_FORM)
    role = CustomRole.objects.get(name="Integrators")
    membership = Membership.objects.get(user=users["custom_none"])
    membership.custom_role, membership.builtin_role = role, ""
    membership.save()
    assert access_level(membership, Area.FUNCTIONS) == Access.WRITE
    assert access_level(membership, Area.STORAGE) == Access.READ


@pytest.mark.parametrize("name", ["Full Admin", "full_admin", "standard admin", "READ-ONLY ADMIN"])
def test_a_custom_role_cannot_take_a_builtin_name(admin_client, org, name):
    response = admin_client.post(url("accounts:roles", org), {**ROLE_FORM, "name": name})
    assert response.status_code == 400 and "built-in role" in response.content.decode()
    assert not CustomRole.objects.filter(name__iexact=name).exists()


def test_a_duplicate_custom_role_name_is_refused(admin_client, org):
    response = admin_client.post(url("accounts:roles", org), {**ROLE_FORM, "name": "functions VIEWER"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_an_unknown_access_level_is_refused(admin_client, org):
    response = admin_client.post(url("accounts:roles", org), {**ROLE_FORM, "functions_access": "admin"})
    assert response.status_code == 400 and not CustomRole.objects.filter(name="Integrators").exists()


def test_editing_a_role_changes_its_permissions(admin_client, org):
    role = CustomRole.objects.get(name="Drivers only")
    response = admin_client.post(url("accounts:role_edit", org, pk=role.pk), {**ROLE_FORM, "name": "Drivers"})
    role.refresh_from_db()
    assert response.status_code == 302 and (role.name, role.functions_access) == ("Drivers", "write")


def test_a_refused_edit_keeps_the_stored_role(admin_client, org):
    role = CustomRole.objects.get(name="Drivers only")
    response = admin_client.post(url("accounts:role_edit", org, pk=role.pk), {**ROLE_FORM, "name": "Functions viewer"})
    role.refresh_from_db()
    assert response.status_code == 400 and role.name == "Drivers only" and role.functions_access == "none"


@pytest.mark.parametrize("role", [r for r in ROLES if r != "full_admin"])
def test_only_a_full_admin_edits_or_deletes_roles(member, org, role):
    target = CustomRole.objects.get(name="Drivers only")
    client = member(role)
    expected = 404 if role == "outsider" else 403
    assert client.get(url("accounts:role_edit", org, pk=target.pk)).status_code == expected
    assert client.post(url("accounts:role_delete", org, pk=target.pk)).status_code == expected
    assert CustomRole.objects.filter(pk=target.pk).exists()


def test_a_role_in_use_cannot_be_deleted(admin_client, org):
    role = CustomRole.objects.get(name="Drivers only")
    response = admin_client.post(url("accounts:role_delete", org, pk=role.pk), follow=True)
    assert "give them another role first" in response.content.decode()
    assert CustomRole.objects.filter(pk=role.pk).exists()


def test_an_unused_role_is_deleted(admin_client, org):
    role = CustomRole.objects.create(organization=org, name="Temp")
    admin_client.post(url("accounts:role_delete", org, pk=role.pk))
    assert not CustomRole.objects.filter(pk=role.pk).exists()


def test_another_organizations_role_is_a_404(admin_client, org, other_org):
    foreign = CustomRole.objects.create(organization=other_org, name="Foreign")
    assert admin_client.get(url("accounts:role_edit", org, pk=foreign.pk)).status_code == 404
    assert admin_client.post(url("accounts:role_delete", org, pk=foreign.pk)).status_code == 404


# --- members ------------------------------------------------------------------------


def test_a_full_admin_invites_a_new_member_and_gets_a_set_password_link(admin_client, org, mailoutbox):
    response = admin_client.post(url("accounts:members", org), {"email": "New.Person@Example.com", "role": "read_only_admin"})
    assert response.status_code == 302  # and a reload of the page does not invite twice
    membership = Membership.objects.get(user__email="new.person@example.com", organization=org)
    assert membership.builtin_role == BuiltinRole.READ_ONLY_ADMIN
    page = admin_client.get(response["Location"])
    assert "/reset/" in page.content.decode() and len(mailoutbox) == 1
    # The form is empty again; the link is shown once.
    assert page.context["invite_form"].data == {}
    assert "/reset/" not in admin_client.get(url("accounts:members", org)).content.decode()


def test_inviting_with_a_custom_role(admin_client, org):
    role = CustomRole.objects.get(name="Functions viewer")
    admin_client.post(url("accounts:members", org), {"email": "c@example.com", "role": f"custom:{role.pk}"})
    assert Membership.objects.get(user__email="c@example.com").custom_role == role


def test_inviting_an_existing_member_again_is_refused(admin_client, org):
    response = admin_client.post(url("accounts:members", org), {"email": "standard_admin@example.com", "role": "full_admin"})
    assert response.status_code == 400 and "already a member" in response.content.decode()
    assert Membership.objects.get(user__email="standard_admin@example.com").builtin_role == "standard_admin"


def test_inviting_with_another_organizations_role_is_refused(admin_client, org, other_org):
    foreign = CustomRole.objects.create(organization=other_org, name="Foreign")
    response = admin_client.post(url("accounts:members", org), {"email": "x@example.com", "role": f"custom:{foreign.pk}"})
    assert response.status_code == 400 and not Membership.objects.filter(user__email="x@example.com").exists()


@pytest.mark.parametrize("role", [r for r in ROLES if r != "full_admin"])
def test_a_role_change_by_a_non_full_admin_is_refused(member, users, org, role):
    target = Membership.objects.get(user=users["read_only_admin"])
    response = member(role).post(url("accounts:member_role", org, pk=target.pk), {"role": "full_admin"})
    assert response.status_code == (404 if role == "outsider" else 403)
    target.refresh_from_db()
    assert target.builtin_role == "read_only_admin"


def test_a_full_admin_changes_a_role(admin_client, users, org):
    target = Membership.objects.get(user=users["read_only_admin"])
    admin_client.post(url("accounts:member_role", org, pk=target.pk), {"role": "standard_admin"})
    target.refresh_from_db()
    assert target.builtin_role == "standard_admin"


def test_the_last_full_admin_cannot_be_demoted(admin_client, users, org):
    me = Membership.objects.get(user=users["full_admin"], organization=org)
    response = admin_client.post(url("accounts:member_role", org, pk=me.pk), {"role": "read_only_admin"}, follow=True)
    me.refresh_from_db()
    assert me.builtin_role == "full_admin" and "last Full Admin" in response.content.decode()


def test_the_last_full_admin_cannot_be_removed(admin_client, users, org):
    me = Membership.objects.get(user=users["full_admin"], organization=org)
    response = admin_client.post(url("accounts:member_remove", org, pk=me.pk), follow=True)
    assert Membership.objects.filter(pk=me.pk).exists() and "last Full Admin" in response.content.decode()


def test_a_full_admin_can_step_down_once_there_is_another(admin_client, users, org):
    other = Membership.objects.get(user=users["standard_admin"])
    admin_client.post(url("accounts:member_role", org, pk=other.pk), {"role": "full_admin"})
    me = Membership.objects.get(user=users["full_admin"], organization=org)
    admin_client.post(url("accounts:member_role", org, pk=me.pk), {"role": "standard_admin"})
    me.refresh_from_db()
    assert me.builtin_role == "standard_admin"


def test_a_full_admin_removes_a_member(admin_client, users, org):
    target = Membership.objects.get(user=users["custom_none"])
    admin_client.post(url("accounts:member_remove", org, pk=target.pk))
    assert not Membership.objects.filter(pk=target.pk).exists()


@pytest.mark.parametrize("role", [r for r in ROLES if r != "full_admin"])
def test_only_a_full_admin_removes_members(member, users, org, role):
    target = Membership.objects.get(user=users["custom_none"])
    assert member(role).post(url("accounts:member_remove", org, pk=target.pk)).status_code in (403, 404)
    assert Membership.objects.filter(pk=target.pk).exists()


def test_members_of_another_organization_cannot_be_touched(admin_client, users, org, other_org):
    foreign = Membership.objects.get(user=users["outsider"])
    assert admin_client.post(url("accounts:member_remove", org, pk=foreign.pk)).status_code == 404
    assert admin_client.post(url("accounts:member_role", org, pk=foreign.pk), {"role": "read_only_admin"}).status_code == 404


def test_read_roles_see_members_without_write_controls(member, org):
    body = member("read_only_admin").get(url("accounts:members", org)).content.decode()
    assert "full_admin@example.com" in body and "Invite" not in body and "Remove" not in body


# --- services' bad input -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "X", "region": "mars"}, "Unknown region"),
        ({"name": "X", "timezone": "Mars/Olympus"}, "IANA time zone"),
        ({"name": "  "}, "needs a name"),
        ({"name": "acme fleet"}, "already exists"),
    ],
)
def test_organization_create_refuses_bad_input(org, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        services.organization_create(**kwargs)
    assert Organization.objects.count() == 1


def test_membership_add_refuses_an_unknown_role(org):
    with pytest.raises(ValidationError, match="Unknown role “owner”"):
        services.membership_add(organization=org, email="a@example.com", role="owner")


def test_membership_add_refuses_a_bad_email(org):
    with pytest.raises(ValidationError, match="not a valid e-mail"):
        services.membership_add(organization=org, email="not-an-email", role="full_admin")


# --- pending invitations ------------------------------------------------------------------


def invite(client, org, email="pending@example.com", role="read_only_admin"):
    client.post(url("accounts:members", org), {"email": email, "role": role})
    return Membership.objects.get(user__email=email, organization=org)


def test_pending_invitations_are_listed_apart_until_accepted(admin_client, org):
    pending = invite(admin_client, org)
    page = admin_client.get(url("accounts:members", org))
    assert list(page.context["pending"]) == [pending]
    assert pending not in list(page.context["rows"])
    user = pending.user
    user.set_password("a-long-new-password-1")
    user.save()
    page = admin_client.get(url("accounts:members", org))
    assert list(page.context["pending"]) == [] and pending in list(page.context["rows"])


@pytest.mark.parametrize("role", list(ROLES))
def test_only_a_full_admin_resends_or_revokes_an_invitation(member, admin_client, org, role, mailoutbox):
    pending = invite(admin_client, org)
    mailoutbox.clear()
    for action in ("accounts:invitation_resend", "accounts:invitation_revoke"):
        response = member(role).post(reverse(action, kwargs={"org_id": org.id, "pk": pending.pk}))
        if role != "full_admin":
            assert response.status_code == (404 if role == "outsider" else 403)
    if role == "full_admin":
        assert len(mailoutbox) == 1 and "/reset/" in mailoutbox[0].body
        assert not Membership.objects.filter(pk=pending.pk).exists()
        assert not User.objects.filter(email="pending@example.com").exists()
    else:
        assert not mailoutbox and Membership.objects.filter(pk=pending.pk).exists()


def test_resending_shows_a_new_link_and_revoking_makes_every_link_stop_working(admin_client, org):
    client = Client()  # the invitee's browser, not the admin's
    pending = invite(admin_client, org)
    first = admin_client.get(url("accounts:members", org))  # the page after the invite's redirect has no link left
    response = admin_client.post(reverse("accounts:invitation_resend", kwargs={"org_id": org.id, "pk": pending.pk}),
                                 follow=True)
    body = response.content.decode()
    assert "Sent the invitation to pending@example.com again." in body and first.status_code == 200
    link = re.search(r'id="invite-link">([^<]+)<', body).group(1)
    assert client.get(link, follow=True).context["validlink"] is True
    admin_client.post(reverse("accounts:invitation_revoke", kwargs={"org_id": org.id, "pk": pending.pk}))
    assert Client().get(link, follow=True).context["validlink"] is False


def test_an_accepted_invitation_cannot_be_revoked_as_one(admin_client, users, org):
    member_ = Membership.objects.get(user=users["read_only_admin"], organization=org)
    response = admin_client.post(reverse("accounts:invitation_revoke", kwargs={"org_id": org.id, "pk": member_.pk}),
                                 follow=True)
    assert "has already accepted the invitation" in response.content.decode()
    assert Membership.objects.filter(pk=member_.pk).exists()


def test_revoking_keeps_an_account_that_belongs_to_another_organization(admin_client, org, other_org):
    pending = invite(admin_client, org, email="shared@example.com")
    Membership.objects.create(user=pending.user, organization=other_org, builtin_role=BuiltinRole.READ_ONLY_ADMIN)
    admin_client.post(reverse("accounts:invitation_revoke", kwargs={"org_id": org.id, "pk": pending.pk}))
    assert User.objects.filter(email="shared@example.com").exists()
    assert not Membership.objects.filter(pk=pending.pk).exists()


def test_the_set_password_page_names_the_account_and_the_sign_in_page_confirms(admin_client, org):
    client = Client()  # the invitee's browser, not the admin's
    invite(admin_client, org)
    body = admin_client.get(url("accounts:members", org)).content.decode()
    assert "pending@example.com" in body
    link = re.search(r"http://testserver(/reset/[^<\"]+)", admin_client.post(
        reverse("accounts:invitation_resend", kwargs={"org_id": org.id,
                                                        "pk": Membership.objects.get(user__email="pending@example.com").pk}),
        follow=True).content.decode()).group(1)
    page = client.get(link, follow=True)
    assert page.context["validlink"] and 'data-testid="account">pending@example.com<' in page.content.decode()
    form_url = page.redirect_chain[-1][0] if page.redirect_chain else link
    short = client.post(form_url, {"new_password1": "short", "new_password2": "short"})
    assert short.status_code == 200 and "too short" in short.content.decode()
    done = client.post(form_url, {"new_password1": "a-long-new-password-1", "new_password2": "a-long-new-password-1"},
                       follow=True)
    assert done.request["PATH_INFO"] == "/login/"
    assert "Your password is set. Sign in as pending@example.com." in done.content.decode()
