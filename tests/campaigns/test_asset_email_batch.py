"""The asset email listener takes a batch of submissions per job (one per intake batch)."""

import pytest
import sqlalchemy as sa

from app import mail
from app.db import db
from campaigns.jobs import send_asset_emails
from forms.models import Submission
from tests.campaigns.helpers import (
    asset_emails,
    fill_and_submit,
    make_file_asset,
    make_form,
    make_page,
    parse,
)


def _submissions(client, n: int) -> list[int]:
    make_page(form=make_form(), asset=make_file_asset())
    for i in range(n):
        response = fill_and_submit(client, "guide", email=f"p{i}@example.com")
        assert response.status_code == 303
    ids = list(db.session.scalars(sa.select(Submission.id).order_by(Submission.id)))
    assert len(ids) == n
    return ids


def _recipients() -> list[str]:
    return sorted(parse(path)["To"].addresses[0].addr_spec for path in asset_emails())


def test_a_batch_sends_each_email_once_however_often_it_runs(app, client):
    ids = _submissions(client, 3)
    assert all(send_asset_emails(ids))
    assert send_asset_emails(ids) == [None, None, None]  # redelivered: nothing twice
    assert send_asset_emails(ids[1:2]) == [None]
    assert _recipients() == ["p0@example.com", "p1@example.com", "p2@example.com"]


def test_one_failing_email_does_not_hold_up_the_others_and_the_retry_sends_only_it(
        app, client, monkeypatch):
    ids = _submissions(client, 3)
    real = mail.deliver
    broken = db.session.get(Submission, ids[1]).lead_id

    def deliver(key, build, *, lead_id=None, **kwargs):
        if lead_id == broken:
            raise RuntimeError("template exploded")
        return real(key, build, lead_id=lead_id, **kwargs)

    monkeypatch.setattr(mail, "deliver", deliver)
    with pytest.raises(RuntimeError, match="template exploded"):  # the outbox retries the batch
        send_asset_emails(ids)
    assert _recipients() == ["p0@example.com", "p2@example.com"]
    monkeypatch.setattr(mail, "deliver", real)
    sent = send_asset_emails(ids)  # the retry
    assert sent[0] is None and sent[1] and sent[2] is None
    assert _recipients() == ["p0@example.com", "p1@example.com", "p2@example.com"]
