
from config import health


def test_healthz_reports_database_and_broker_ok(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "database": {"status": "ok"}, "broker": {"status": "ok"}, "disk": {"status": "ok"},
    }


def test_healthz_is_503_when_the_broker_is_down(client, db, monkeypatch):
    def broken():
        raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(health, "_broker", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == {"status": "down", "error": "ConnectionRefusedError"}


def test_healthz_reads_the_embedded_brokers_file(client, db, settings, tmp_path):
    # Connecting to the embedded broker opens nothing: the check must read its file. One that
    # is not a database (or cannot be opened) is "down".
    broken = tmp_path / "broker.sqlite3"
    broken.write_bytes(b"this is not an SQLite database, " * 100)
    settings.CELERY_BROKER_URL = f"embedded+sqlite:///{broken}"
    from config.celery import app

    before, app.conf.broker_url = app.conf.broker_url, settings.CELERY_BROKER_URL
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["broker"] == {"status": "down", "error": "DatabaseError"}
        broken.unlink()
        assert client.get("/healthz").json()["broker"] == {"status": "ok"}
    finally:
        app.conf.broker_url = before


def test_healthz_is_503_and_says_why_when_the_disk_is_nearly_full(client, db, settings):
    settings.FUNCTIONS_MIN_FREE_DISK_MB = 1024**3  # a petabyte: no disk here has that free
    response = client.get("/healthz")
    assert response.status_code == 503
    disk = response.json()["disk"]
    assert disk["status"] == "low" and disk["thresholdMb"] == 1024**3 and disk["freeMb"] >= 0
    assert "FUNCTIONS_MIN_FREE_DISK_MB" in disk["message"] and "claim no runs" in disk["message"]


def test_a_worker_short_of_disk_claims_no_run(org, settings):
    from functions.models import Attempt, Run, RunStatus
    from functions.run_services import run_trigger
    from runtime import services
    from tests.factories import make_function

    run = run_trigger(function=make_function(org, "fn"), trigger="manual")
    settings.FUNCTIONS_MIN_FREE_DISK_MB = 1024**3
    recorded = services.run_execute(run_id=run.pk)
    assert [(r.run_id, r.countdown) for r in recorded.resend] == [(run.pk, 30)]  # sent back for any worker
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.attempts == 0
    assert not Attempt.objects.filter(run=run).exists()
