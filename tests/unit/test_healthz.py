
from config import health


def test_healthz_reports_database_and_broker_ok(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": {"status": "ok"}, "broker": {"status": "ok"}}


def test_healthz_is_503_when_the_broker_is_down(client, db, monkeypatch):
    def broken():
        raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(health, "_broker", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == {"status": "down", "error": "ConnectionRefusedError"}
