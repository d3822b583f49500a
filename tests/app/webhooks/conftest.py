from __future__ import annotations

import pytest

from tests.fakes.webhook_receiver import Receiver


@pytest.fixture
def app_config(app_config):
    # The receiver listens on loopback, which Kindling refuses unless an operator allows it.
    return dict(app_config, OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
                WEBHOOK_RETRY_SCHEDULE=(0, 0, 0, 0), WEBHOOK_TIMEOUT=5)


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()
