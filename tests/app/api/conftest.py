"""API test helpers: a user with a token, and a client that sends it."""

from __future__ import annotations

from typing import Any

import pytest

from app.api import tokens
from app.db import db
from tests.helpers import make_user


class ApiClient:
    def __init__(self, client, token: str):
        self.client = client
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, **kw: Any):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json: Any = None, **kw: Any):
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)),
                                **kw)

    def patch(self, path: str, json: Any = None, **kw: Any):
        return self.client.patch(path, json=json,
                                 headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path: str, **kw: Any):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


def token_for(email: str = "integration@example.com", scope: str = "write",
              role: str = "marketer") -> str:
    from app.auth.models import find_user_by_email

    user = find_user_by_email(email) or make_user(email, role)
    _row, token = tokens.issue(user, f"{scope} token", scope)
    db.session.commit()
    return token


@pytest.fixture
def api(app, client) -> ApiClient:
    return ApiClient(client, token_for())


@pytest.fixture
def read_api(app, client) -> ApiClient:
    return ApiClient(client, token_for("reader@example.com", "read"))
