"""Engagement is current everywhere: an idle lead cools in the list, its filters, the export,
sequence branches, alerts and the CRM payload; cooled below the MQL line, it stops qualifying.
Time is frozen and moved with time-machine."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import time_machine

from app.db import db
from app.leads import engagement
from app.leads.service import change_stage, upsert_lead

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_an_idle_lead_cools_everywhere(app, client, auth):
    with time_machine.travel(T0, tick=False):
        auth.login_as("marketer")
        lead = upsert_lead("ann@example.com", {"first_name": "Ann"}, source="t").lead
        change_stage(lead, "mql", reason="score 80")
        lead.fit_score = 30
        engagement.store(lead, 80.0)
        db.session.commit()
        assert lead.engagement_now == 80.0
        assert "Ann" in client.get("/admin/leads/?eng_min=60").get_data(as_text=True)
    # One half-life (30 days by default) later, nothing new happened.
    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        db.session.expire_all()
        assert round(lead.engagement_now, 1) == 40.0
        assert "Ann" not in client.get("/admin/leads/?eng_min=60").get_data(as_text=True)
        assert "Ann" in client.get("/admin/leads/?eng_min=39").get_data(as_text=True)
        page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
        assert "<dt>Engagement</dt><dd>40.0</dd>" in page
        exported = client.get("/sales/export.csv?stage=mql").get_data(as_text=True)
        row = next(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
        assert float(row["engagement_score"]) == 40.0
        assert client.get("/sales/export.csv?stage=mql&min_engagement=60").get_data(
            as_text=True).count("ann@example.com") == 0
        from app.leads.story import profile
        from app.webhooks.payloads import lead_payload

        assert "Engagement: 40" in profile(lead).lines  # the alert's story
        payload = lead_payload(lead)  # what the CRM (webhook subscribers) receives
        assert payload["scores"]["engagement"] == 40.0
        assert payload["lead"]["engagement_score"] == 40.0


def test_a_cooled_lead_fails_a_score_branch(app):
    from nurture.conditions import evaluate
    from nurture.models import Condition, Enrollment, Step

    with time_machine.travel(T0, tick=False):
        lead = upsert_lead("ann@example.com", source="t").lead
        engagement.store(lead, 60.0)
        db.session.commit()
        step = Step(condition=Condition.SCORE_AT_LEAST.value,
                    params={"kind": "engagement", "score": 50})
        enrollment = Enrollment(lead=lead)
        assert evaluate(step, enrollment) is True
    with time_machine.travel(T0 + timedelta(days=10), tick=False):
        assert evaluate(step, enrollment) is False  # 60 × 0.5^(10/30) ≈ 47.6
