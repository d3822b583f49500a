"""Sales test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def fake_crm():
    from tests.app.sales.fake_crm import FakeCRM

    server = FakeCRM().start()
    yield server
    server.stop()
