"""Integration tests run against the real PostgreSQL and Redis named by the environment.

Without DATABASE_URL (postgres) and CELERY_BROKER_URL (redis or amqp) they skip
with a visible reason; with REQUIRE_SERVICES=1 (CI) a missing service fails them.
"""

import os

import pytest
from django.conf import settings


def _missing():
    problems = []
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        problems.append("DATABASE_URL=postgres://postgres@127.0.0.1:5432/test")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis://", "amqp://")):
        problems.append("CELERY_BROKER_URL=redis://127.0.0.1:6379/0")
    return problems


@pytest.fixture(autouse=True)
def real_services():
    missing = _missing()
    if missing:
        message = "integration test needs real services: set " + " and ".join(missing)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    assert settings.DATABASES["default"]["ENGINE"] == "config.postgresql"
