"""Small hardening of the dashboard and the data directory (issue 18, item 9).

Every page carries a strict Content-Security-Policy (found by following every
link a Full Admin can reach, so new pages are covered without listing them);
a 403 is logged as one line; DATA_DIR is 0700 and its files 0600.
"""

import logging
import os
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.urls import reverse

from functions.models import Run, RunStatus
from functions.run_services import run_trigger
from tests.factories import make_function

ROOT = Path(__file__).resolve().parents[2]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.inline = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "script" and not attrs.get("src"):
            self.inline.append("<script> without src")
        if "style" in attrs:
            self.inline.append(f"style= on <{tag}>")
        self.inline.extend(f"{name}= on <{tag}>" for name in attrs if name.startswith("on"))


def _policy(response):
    return dict(
        (part.split()[0], part.split()[1:])
        for part in response.headers.get("Content-Security-Policy", "").split(";")
        if part.strip()
    )


def _assert_strict(response, address):
    policy = _policy(response)
    assert policy, f"{address} has no Content-Security-Policy"
    assert policy["default-src"] == ["'self'"], address
    assert policy["script-src"] == ["'self'"], address
    assert policy["style-src"] == ["'self'"], address
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], address
    text = " ".join(" ".join(v) for v in policy.values())
    assert "unsafe-inline" not in text and "unsafe-eval" not in text, address


@pytest.fixture
def site(org, users):
    function = make_function(org, "hello", user=users["full_admin"])
    run = run_trigger(function=function, trigger="manual", actor=users["full_admin"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    return function, run


def test_every_page_a_full_admin_reaches_sends_a_strict_csp_and_has_no_inline_script(member, site):
    client = member("full_admin")
    queue, seen, pages = ["/"], set(), 0
    while queue and pages < 250:
        address = queue.pop(0)
        if address in seen:
            continue
        seen.add(address)
        response = client.get(address)
        if response.status_code in (301, 302):
            queue.append(response.headers["Location"])
            continue
        if not response.headers.get("Content-Type", "").startswith("text/html"):
            continue
        pages += 1
        _assert_strict(response, address)
        parser = _Links()
        parser.feed(response.content.decode())
        assert not parser.inline, f"{address}: {parser.inline}"
        for href in parser.links:
            target = urljoin(address, href)
            parts = urlsplit(target)
            if parts.netloc or parts.scheme or parts.path.startswith(("/logout", "/static/")):
                continue
            queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    # The crawl really went through the product, not just the home page.
    function, run = site
    assert pages >= 12, seen
    assert reverse("functions:run_detail", kwargs={
        "org_id": function.organization_id, "name": function.name, "correlation_id": run.correlation_id,
    }) in seen


@pytest.mark.parametrize("address", ["/login/", "/healthz", "/no-such-page/"])
def test_pages_outside_an_organization_send_the_policy_too(client, db, address):
    _assert_strict(client.get(address), address)


def test_a_refused_request_is_logged_as_one_line_without_a_traceback(member, org, caplog):
    client = member("read_only_admin")
    address = reverse("accounts:roles", kwargs={"org_id": org.id})
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.post(reverse("accounts:role_delete", kwargs={"org_id": org.id, "pk": 999}))
    assert response.status_code == 403
    assert address  # the page exists; the write was refused
    records = [r for r in caplog.records if getattr(r, "status_code", None) == 403]
    assert len(records) == 1
    # Formatted exactly as the console handler does, with its filter.
    handler = logging.getLogger().handlers[0]
    for log_filter in handler.filters:
        log_filter.filter(records[0])
    line = handler.format(records[0])
    assert "\n" not in line and "Traceback" not in line
    assert "Forbidden" in line and "user=read_only_admin@example.com" in line and "reason=" in line


def test_the_data_directory_is_0700_and_its_files_0600(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    # A file an older version left world-readable is tightened at the next start.
    (data / "db.sqlite3").touch(mode=0o644)
    os.chmod(data / "db.sqlite3", 0o644)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="config.settings")
    for command in (["migrate", "--no-input", "-v0"], ["createorg", "Modes Inc"]):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    script = (
        "import django; django.setup();"
        "from django.core.files.storage import default_storage; from django.core.files.base import ContentFile;"
        "default_storage.save('orgfiles/1/a/b.txt', ContentFile(b'x'));"
        "from secrets_vault.crypto import keyring; keyring()"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file() and "static" not in p.parts]
    names = {p.name for p in files}
    assert {"db.sqlite3", "broker.sqlite3", "secret_key", "secrets.key", "b.txt"} <= names, names
    loose = {str(p.relative_to(data)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert not loose
    folders = [p for p in (data / "storage").rglob("*") if p.is_dir()]
    assert folders and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in folders)
