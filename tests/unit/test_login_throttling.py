"""Sign-in throttling against a live server, and the API tokens' throttle hook (issue 18, item 4)."""

import logging
import re
import time
from datetime import timedelta

import pytest
import requests
from django.test import RequestFactory

from accounts.throttle import token_auth_failed, token_auth_throttled
from tests.conftest import PASSWORD

GENERIC = "Too many sign-in attempts"


@pytest.fixture
def short_lockout(settings):
    settings.AXES_FAILURE_LIMIT = settings.LOGIN_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=3)
    return settings


def sign_in(base, email, password, address=None):
    """A browser-like sign-in: fetch the form for its CSRF token, post it; (status, body, signed in?)."""
    session = requests.Session()
    headers = {"X-Forwarded-For": address} if address else {}
    form = session.get(f"{base}/login/", headers=headers, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = session.post(
        f"{base}/login/", data={"username": email, "password": password, "csrfmiddlewaretoken": token, "next": ""},
        headers={"Referer": f"{base}/login/", **headers}, allow_redirects=False, timeout=10,
    )
    return response.status_code, response.text, response.status_code == 302 and "sessionid" in session.cookies


def test_wrong_passwords_lock_the_account_then_the_lock_ends_by_itself(live_server, users, short_lockout, caplog):
    base, email = live_server.url, users["full_admin"].email
    for _ in range(2):
        status, body, signed_in = sign_in(base, email, "wrong-password")
        assert status == 200 and not signed_in and GENERIC not in body
    with caplog.at_level(logging.WARNING, logger="accounts.throttle"):
        # The failure that reaches the limit is answered with the lock already.
        assert sign_in(base, email, "wrong-password")[0] == 429
        status, body, signed_in = sign_in(base, email, PASSWORD)
    # The right password is refused while the lock holds, with the generic message.
    assert status == 429 and not signed_in and GENERIC in body
    assert PASSWORD not in body
    # An operator sees who, from where, and how to lift it, on one line.
    lines = [r.getMessage() for r in caplog.records if r.name == "accounts.throttle"]
    assert lines and "full_admin@example.com" in lines[-1] and "axes_reset_username" in lines[-1]
    assert "\n" not in lines[-1] and PASSWORD not in lines[-1]
    time.sleep(3.5)
    status, _, signed_in = sign_in(base, email, PASSWORD)
    assert status == 302 and signed_in


def test_a_locked_unknown_account_gets_the_same_message_as_a_real_one(live_server, users, short_lockout):
    base = live_server.url
    answers = []
    for email in (users["full_admin"].email, "nobody-here@example.com"):
        for _ in range(3):
            sign_in(base, email, "wrong-password", address=f"198.51.100.{len(answers) + 7}")
        status, body, _ = sign_in(base, email, "anything", address=f"198.51.100.{len(answers) + 7}")
        answers.append((status, body.replace(email, "EMAIL")))
    assert answers[0][0] == answers[1][0] == 429
    assert answers[0][1] == answers[1][1]


def test_one_address_trying_many_accounts_is_throttled(live_server, users, short_lockout, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # behind a proxy: X-Forwarded-For counts
    base = live_server.url
    for role, expected in (("standard_admin", 200), ("read_only_admin", 200), ("custom_none", 429)):
        status, _, _ = sign_in(base, users[role].email, "wrong-password", address="203.0.113.9")
        assert status == expected
    status, body, signed_in = sign_in(base, users["full_admin"].email, PASSWORD, address="203.0.113.9")
    assert status == 429 and GENERIC in body and not signed_in
    # Another address signs in to the same account at once: the account itself was never wrong.
    status, _, signed_in = sign_in(base, users["full_admin"].email, PASSWORD, address="203.0.113.10")
    assert status == 302 and signed_in


def test_a_successful_sign_in_clears_earlier_failures(live_server, users, short_lockout):
    base, email = live_server.url, users["full_admin"].email
    for _ in range(2):
        sign_in(base, email, "wrong-password")
    assert sign_in(base, email, PASSWORD)[2]
    for _ in range(2):
        sign_in(base, email, "wrong-password")
    assert sign_in(base, email, PASSWORD)[2]


def test_api_tokens_guessed_from_one_address_are_throttled_until_the_cool_off_ends(db, short_lockout, caplog):
    factory = RequestFactory()

    def request(address):
        return factory.get("/api/functions", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer tok_random_attempt_0451")

    assert token_auth_throttled(request=request("192.0.2.1")) == 0
    with caplog.at_level(logging.WARNING, logger="accounts.throttle"):
        for _ in range(3):
            token_auth_failed(request=request("192.0.2.1"))
    wait = token_auth_throttled(request=request("192.0.2.1"))
    assert wait == 3  # seconds, for Retry-After
    assert token_auth_throttled(request=request("192.0.2.2")) == 0  # another address is not affected
    line = [r.getMessage() for r in caplog.records if r.name == "accounts.throttle"][-1]
    assert "API token" in line and "192.0.2.1" in line and "axes_reset_ip" in line and "tok_random" not in line
    time.sleep(3.5)
    assert token_auth_throttled(request=request("192.0.2.1")) == 0
