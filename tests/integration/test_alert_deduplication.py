"""Concurrent deliveries of one incident start its runs once: the unique key decides, on PostgreSQL."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from alerts import services
from alerts.models import Incident, IncidentKey, IncidentRun, IncidentSource
from functions.models import Run
from tests.conftest import PASSWORD
from tests.factories import make_function

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERIES = 8


@pytest.fixture
def alert(org):
    notify = make_function(org, "notify", visible_to_customers=True)
    escalate = make_function(org, "escalate", visible_to_customers=True)
    return services.alert_create(organization=org, actor=None, name="Braking", functions=[notify, escalate])


def test_threads_firing_one_incident_at_once_start_each_action_once(alert):
    barrier = threading.Barrier(DELIVERIES)

    def deliver(_):
        try:
            barrier.wait()
            result = services.incident_fire(
                alert=alert, driver_id="1", asset_id="2", alert_incident_time="1735689600000",
                source=IncidentSource.API,
            )
            return result.deduplicated, result.first.pk, sorted(r.run_id for r in result.runs)
        finally:
            connection.close()

    with ThreadPoolExecutor(DELIVERIES) as pool:
        results = list(pool.map(deliver, range(DELIVERIES)))
    assert sorted(dedup for dedup, _, _ in results) == [False] + [True] * (DELIVERIES - 1)
    assert len({first for _, first, _ in results}) == 1
    assert len({tuple(runs) for _, _, runs in results}) == 1
    assert Run.objects.count() == 2 and IncidentRun.objects.count() == 2
    assert Incident.objects.count() == DELIVERIES and IncidentKey.objects.count() == 1


def test_concurrent_requests_to_a_live_server_start_the_runs_once(alert, users, live_server):
    """The dashboard's "Fire test incident", posted by eight browsers' worth of threads at once."""
    session = requests.Session()
    login = session.get(f"{live_server.url}/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    signed_in = session.post(
        f"{live_server.url}/login/",
        data={"username": users["full_admin"].email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{live_server.url}/login/"},
    )
    assert signed_in.ok and "sessionid" in session.cookies
    page_url = f"{live_server.url}/o/{alert.organization_id}/settings/alerts/{alert.pk}/"
    page = session.get(page_url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    barrier = threading.Barrier(DELIVERIES)

    def deliver(_):
        barrier.wait()
        return session.post(
            f"{page_url}fire/",
            data={"driver_id": "7", "asset_id": "8", "alert_incident_time": "1735689600000",
                  "csrfmiddlewaretoken": token},
            headers={"Referer": page_url}, allow_redirects=False,
        ).status_code

    with ThreadPoolExecutor(DELIVERIES) as pool:
        statuses = list(pool.map(deliver, range(DELIVERIES)))
    assert statuses == [302] * DELIVERIES
    assert Run.objects.count() == 2
    assert Incident.objects.filter(duplicate_of__isnull=True).count() == 1
    assert Incident.objects.filter(duplicate_of__isnull=False).count() == DELIVERIES - 1


def test_concurrent_api_deliveries_to_a_live_server_start_the_runs_once(alert, live_server):
    """POST /api/alerts/{id}/incidents from eight threads at once, as a retrying sender would."""
    from accounts.services import api_token_create

    _, raw = api_token_create(organization=alert.organization, name="sender", scopes=["functions:write"])
    url = f"{live_server.url}/api/alerts/{alert.pk}/incidents"
    barrier = threading.Barrier(DELIVERIES)

    def deliver(_):
        barrier.wait()
        response = requests.post(
            url, json={"driverId": "5", "assetId": "6", "alertIncidentTime": "1735689600000"},
            headers={"Authorization": f"Bearer {raw}"}, timeout=30,
        )
        return response.status_code, response.json()["data"]

    with ThreadPoolExecutor(DELIVERIES) as pool:
        answers = list(pool.map(deliver, range(DELIVERIES)))
    assert [status for status, _ in answers] == [200] * DELIVERIES
    assert sorted(data["deduplicated"] for _, data in answers) == [False] + [True] * (DELIVERIES - 1)
    assert len({data["incidentId"] for _, data in answers}) == 1
    assert len({tuple(r["correlationId"] for r in data["runs"]) for _, data in answers}) == 1
    assert Run.objects.count() == 2
