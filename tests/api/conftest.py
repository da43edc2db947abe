import json

import pytest
from django.test import Client

from accounts.services import API_SCOPES, api_token_create


class ApiClient:
    """Django's test client speaking JSON with a bearer token."""

    def __init__(self, raw, token):
        self.raw = raw
        self.token = token
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def _send(self, method, path, body=None, **extra):
        kwargs = {}
        if body is not None:
            kwargs = {"data": body if isinstance(body, (str, bytes)) else json.dumps(body), "content_type": "application/json"}
        return getattr(self.client, method)(f"/api{path}", **kwargs, **extra)

    def get(self, path, **params):
        return self.client.get(f"/api{path}", params)

    def post(self, path, body=None, **extra):
        return self._send("post", path, body if body is not None else {}, **extra)

    def patch(self, path, body, **extra):
        return self._send("patch", path, body, **extra)

    def put(self, path, body=None, **extra):
        return self._send("put", path, body, **extra)

    def delete(self, path, **extra):
        return self.client.delete(f"/api{path}", **extra)


@pytest.fixture
def api_client(org):
    """api_client(scopes=[...], organization=org) -> an ApiClient with a fresh token."""
    made = []

    def make(scopes=API_SCOPES, organization=None, name=None, **kwargs):
        token, raw = api_token_create(
            organization=organization or org, name=name or f"test token {len(made)}", scopes=scopes, **kwargs
        )
        made.append(token)
        return ApiClient(raw, token)

    return make


@pytest.fixture
def api(api_client):
    """A client whose token has every scope."""
    return api_client()


def assert_error(response, status, *fragments):
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"message", "requestId"}, body
    assert body["requestId"]
    for fragment in fragments:
        assert fragment in body["message"], (fragment, body["message"])
    return body["message"]
