"""Helpers for the forms tests: read a page's hidden values, post like a browser, count rows."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.db import db
from app.leads.models import Event, Lead
from forms.models import Form, Submission

PAGE = ('{% from "forms/_render.html" import render_form %}'
        '<h1>{{ form_def.name }}</h1>{{ render_form(wtform, form_def, action) }}')
LISTENER = "tests.forms.support.follow_up"


def follow_up(submission_id: int) -> None:
    """A stand-in follow-up listener (asset email, enrollment): only its outbox rows matter."""


def hidden_value(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html)
    assert match, f"no {name} on the page"
    return html_lib.unescape(match.group(1))


class HostedPage:
    def __init__(self, client):
        self.client = client

    def get(self, form: Form, query: str = "", **kwargs):
        return self.client.get(f"/test-page/{form.key}{query}", **kwargs)

    def post(self, form: Form, data: dict[str, Any], **kwargs):
        """Post like a browser on the page would (same origin: no token, no cookie needed)."""
        html = self.get(form).get_data(as_text=True)
        posted = {"ts": hidden_value(html, "ts"), **data}
        kwargs.setdefault("headers", {"Sec-Fetch-Site": "same-origin"})
        return self.client.post(f"/test-page/{form.key}", data=posted, **kwargs)


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def leads() -> list[Lead]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Lead).order_by(Lead.id)))


def submissions() -> list[Submission]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Submission).order_by(Submission.id)))


def events(type: str | None = None) -> list[Event]:
    db.session.expire_all()
    query = sa.select(Event).order_by(Event.id)
    if type:
        query = query.where(Event.type == type)
    return list(db.session.scalars(query))


def follow_up_rows() -> list[tuple[str, list[int]]]:
    """(listener job, the submission ids its row carries) of every submission listener's
    outbox row: a batch listener's row carries a list of ids, any other listener's one."""
    from app.outbox import OutboxJob

    db.session.expire_all()
    listeners = current_app.extensions.get("submission_listeners", [])
    rows = db.session.execute(sa.select(OutboxJob.job, OutboxJob.args)
                              .where(OutboxJob.job.in_(listeners)).order_by(OutboxJob.id))
    return [(job, list(args[0]) if isinstance(args[0], list) else [args[0]])
            for job, args in rows]


def assert_follow_up_once(submission_ids: list[int]) -> list[tuple[str, list[int]]]:
    """Each submission is in exactly one outbox row of each listener. Returns the rows."""
    rows = follow_up_rows()
    covered = sorted((job, i) for job, ids in rows for i in ids)
    listeners = current_app.extensions.get("submission_listeners", [])
    assert covered == sorted((job, i) for job in listeners for i in submission_ids)
    return rows
