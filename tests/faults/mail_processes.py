"""What the mail fault scenarios share: real `flask worker` and `flask scheduler` processes
(started as in tests/nurture/worker_process.py), the loopback fake SendGrid told how to fail per
email (tests/fakes/sendgrid_server.py), SendGrid's signed Event Webhook reporting what the fake
accepted, and readers of both mail ledgers."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.mail.ledger import MailDelivery
from nurture.models import LIVE_STATUSES, Enrollment, Send
from tests.fakes.sendgrid_server import FakeSendGrid, Recorded
from tests.nurture.worker_process import WorkerProcess, process_config, wait_for, worker_env

# The tick and the relay each second (the periodic jobs these scenarios do not need, seldom),
# short back-offs and a two-second provider timeout, so that the scenarios fit in seconds. The
# processes read these from the instance's kindling.cfg.
FAST: dict[str, Any] = {
    "TRACKING_FLUSH_INTERVAL": 60,
    "PAGE_VIEW_FLUSH_INTERVAL": 60,
    "NURTURE_TICK_INTERVAL": 1,
    "NURTURE_RETRY_BASE_SECONDS": 1,
    "NURTURE_UNKNOWN_RECHECK_SECONDS": 1,
    "OUTBOX_RELAY_INTERVAL": 1,
    "OUTBOX_RELAY_AFTER_SECONDS": 1,
    "OUTBOX_SCHEDULED_GRACE_SECONDS": 2,
    "OUTBOX_RETRY_INTERVALS": (1, 2, 4, 8),
    "SENDGRID_TIMEOUT": 2,
}
HANG = 4.0  # seconds the fake holds an answer: longer than SENDGRID_TIMEOUT (a hang)


class Fleet:
    """Worker and scheduler processes for one test; `stop()` SIGKILLs whatever still runs."""

    def __init__(self, app_config: Mapping[str, Any], logs: Path):
        self.app_config = app_config
        self.logs = logs
        self.started: list[WorkerProcess] = []

    def start(self, *names: str, command: str = "worker",
              env: Mapping[str, str] | None = None) -> WorkerProcess:
        """Start a process per name (at once), `env` added to its environment; workers are
        waited for until they listen."""
        started = [WorkerProcess(worker_env(self.app_config, **(env or {})),
                                 self.logs / f"{name}.log", command=command) for name in names]
        self.started.extend(started)
        if command == "worker":
            self.wait_for(lambda: all("Listening on" in p.log() for p in started), 60,
                          f"{', '.join(names)} to start")
        return started[-1]

    def logs_text(self) -> str:
        """The tail of every process's log (killed ones' too), for a failure message."""
        return "\n".join(f"--- {p.log_path.name}\n"
                         f"{p.log_path.read_text(errors='replace')[-3000:]}"
                         for p in self.started)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """`wait_for`, with the processes' logs in the message when it times out."""
        try:
            wait_for(predicate, timeout, what, 0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs_text()}") from None

    def stop(self) -> None:
        for process in self.started:
            process.kill()


def configure(app_config: dict[str, Any], fake: FakeSendGrid, signer_key: str,
              **fast: Any) -> dict[str, Any]:
    """The test app's settings, and the processes' (kindling.cfg): SendGrid at the fake, the
    webhook key of the test's signer, FAST (overridden by `fast`)."""
    config = process_config(app_config, {**FAST, **fast}, fake.url)
    return {**config, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer_key}


def fresh() -> None:
    """End the read transaction: see what the other processes wrote."""
    db.session.commit()
    db.session.expire_all()


def mail_rows() -> list[MailDelivery]:
    fresh()
    return list(db.session.scalars(sa.select(MailDelivery).order_by(MailDelivery.id)))


def nurture_sends() -> list[Send]:
    fresh()
    return list(db.session.scalars(sa.select(Send).order_by(Send.id)))


def live_enrollments() -> list[Enrollment]:
    fresh()
    return list(db.session.scalars(sa.select(Enrollment).where(
        Enrollment.status.in_(LIVE_STATUSES))))


def requests_by_row(fake: FakeSendGrid) -> dict[tuple[str, int], list[Recorded]]:
    """What reached the provider, per ledger row: ('mail', delivery_id) or ('send', send_id)."""
    out: dict[tuple[str, int], list[Recorded]] = defaultdict(list)
    for request in fake.mail_sends:
        args = request.json.get("custom_args", {})
        if "delivery_id" in args:
            out[("mail", int(args["delivery_id"]))].append(request)
        elif "send_id" in args:
            out[("send", int(args["send_id"]))].append(request)
    return out


def report_what_was_accepted(client, signer, fake: FakeSendGrid) -> None:
    """SendGrid's Event Webhook: `processed` for every email the provider accepted (whether or
    not the sender heard the answer), with its custom args, as SendGrid posts them."""
    events = []
    for n, request in enumerate(fake.mail_sends):
        if request.accepted:
            events.append({"email": request.recipient, "timestamp": int(time.time()),
                           "event": "processed", "sg_event_id": f"processed-{n}",
                           "sg_message_id": f"fake{n}.filter", **request.json["custom_args"]})
    response = signer.post(client, events)
    assert response.status_code == 200, response.get_data(as_text=True)


def settled(statuses: Callable[[], list[str]], count: int) -> Callable[[], bool]:
    """A wait_for predicate: `count` rows, none still claimed or waiting for a retry."""
    def check() -> bool:
        found = statuses()
        return len(found) == count and all(s in ("sent", "failed", "unknown") for s in found)

    return check
