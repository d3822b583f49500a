"""Security suite fixtures: loopback targets."""

from __future__ import annotations

import pytest

from tests.security.support import Recorder


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.stop()
