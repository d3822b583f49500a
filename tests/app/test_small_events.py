"""Small events (issue 14): the type is stored as an integer code and read as its name (custom
names too, in a process that never wrote them), empty data is NULL, the dedupe key an 8-byte
digest that still allows one row per key; the migrations convert existing rows."""

from __future__ import annotations

import hashlib
import json
import uuid

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app.db import db
from app.leads import event_types
from app.leads.event_columns import digest_hex, digest_int
from app.leads.models import Event
from app.leads.service import record_event, upsert_lead


def _raw() -> list[tuple]:
    return db.session.execute(sa.text(
        "SELECT type, data, dedupe_key FROM events ORDER BY id")).all()


def _another_process() -> None:
    """Forget the names this process learnt by writing: only the fixed table is known."""
    event_types.forget()
    db.session.expire_all()


def test_a_custom_type_is_a_code_on_disk_and_its_name_everywhere_else(app):
    lead = upsert_lead("ann@example.com").lead
    record_event(lead, "custom.webinar_attended", data={"webinar": "Q4"})
    record_event(lead, "email_opened")
    db.session.commit()

    (custom, _, _), (opened, empty, _) = _raw()
    assert isinstance(custom, int) and isinstance(opened, int)
    assert opened == event_types.FIXED["email_opened"]
    assert empty is None  # no '{}' per row

    _another_process()
    events = db.session.scalars(sa.select(Event).order_by(Event.id)).all()
    assert [e.type for e in events] == ["custom.webinar_attended", "email_opened"]
    assert [e.data for e in events] == [{"webinar": "Q4"}, {}]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event).where(
        Event.type.in_(["custom.webinar_attended", "page_viewed"]))) == 1
    rows = db.session.execute(sa.select(Event.type, sa.func.count()).group_by(Event.type)).all()
    assert sorted(tuple(r) for r in rows) == [("custom.webinar_attended", 1), ("email_opened", 1)]
    assert event_types.custom_names("custom.") == ["custom.webinar_attended"]
    # A name only ever asked about stores nothing and matches nothing.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                             .where(Event.type == "custom.never_sent")) == 0
    assert event_types.custom_names("custom.") == ["custom.webinar_attended"]


def test_a_dedupe_key_is_an_8_byte_digest_and_still_writes_once(app):
    lead = upsert_lead("ann@example.com").lead
    assert record_event(lead, "email_opened", dedupe_key="sg:abc") is not None
    assert record_event(lead, "email_opened", dedupe_key="sg:abd") is not None
    assert record_event(lead, "email_opened", dedupe_key="sg:abc") is None
    db.session.commit()
    keys = [key for _, _, key in _raw()]
    # A 64-bit integer on disk (bigint; SQLite's integer), the start of the key's MD5.
    assert keys == [digest_int("sg:abc"), digest_int("sg:abd")]
    assert all(isinstance(k, int) and -2**63 <= k < 2**63 for k in keys)
    assert digest_hex("sg:abc") == hashlib.md5(b"sg:abc").hexdigest()[:16]
    _another_process()
    stored = db.session.scalars(sa.select(Event.dedupe_key).order_by(Event.id)).all()
    assert stored == [digest_hex("sg:abc"), digest_hex("sg:abd")]


def test_the_migration_converts_existing_events(app):
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    downgrade(revision="0019_intake")
    db.session.execute(sa.text(
        "INSERT INTO events (lead_id, type, occurred_at, data, is_bot, dedupe_key) VALUES "
        f"({lead.id}, 'email_opened', '2026-01-01 10:00:00', '{{}}', false, 't:1'), "
        f"({lead.id}, 'custom.demo_booked', '2026-01-02 10:00:00', '{{\"seats\": 3}}', "
        "false, NULL), "
        f"({lead.id}, 'page_viewed', '2026-01-03 10:00:00', '{{}}', true, 't:2')"))
    db.session.commit()
    upgrade()
    _another_process()

    events = db.session.scalars(sa.select(Event).order_by(Event.id)).all()
    assert [(e.type, e.data, e.is_bot) for e in events] == [
        ("email_opened", {}, False), ("custom.demo_booked", {"seats": 3}, False),
        ("page_viewed", {}, True)]
    assert [e.dedupe_key for e in events] == [digest_hex("t:1"), None, digest_hex("t:2")]
    assert [data for _, data, _ in _raw()][::2] == [None, None]
    # The converted keys are the digests new writes compute: still written once.
    assert record_event(lead, "email_opened", dedupe_key="t:1") is None
    assert record_event(lead, "email_opened", dedupe_key="t:3") is not None
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 4


def test_16_byte_digests_become_8_byte_ones_and_still_match_their_keys(app):
    """0026a: a key stored as its 16-byte digest is, after the migration, the same key."""
    lead = upsert_lead("ann@example.com").lead
    assert record_event(lead, "email_opened", dedupe_key="t:old") is not None
    db.session.commit()
    downgrade(revision="0025a_leads_api_indexes")
    # What 0023a's code wrote for this key: its whole MD5.
    whole = hashlib.md5(b"t:old").digest()
    postgres = db.session.get_bind().dialect.name == "postgresql"
    db.session.execute(sa.text("UPDATE events SET dedupe_key = :key"),
                       {"key": uuid.UUID(bytes=whole) if postgres else whole})
    db.session.commit()
    upgrade()
    (after,) = [key for _, _, key in _raw()]
    assert after == digest_int("t:old")
    assert record_event(lead, "email_opened", dedupe_key="t:old") is None
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def _send_columns() -> list[tuple]:
    return [tuple(r) for r in db.session.execute(sa.text(
        "SELECT send_id, step_id, data FROM events ORDER BY id")).all()]


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def test_the_email_an_event_is_about_is_two_integer_columns_and_shown_in_its_data(app):
    lead = upsert_lead("ann@example.com").lead
    record_event(lead, "email_opened", data={"send_id": "41", "step_id": 7})
    record_event(lead, "email_sent", data={"send_id": "42", "step_id": 8, "subject": "Hi"})
    # Another shape (a custom event's own key) stays in data as it was.
    record_event(lead, "custom.call", data={"send_id": "A-1", "step_id": "2"})
    db.session.commit()

    stored = _send_columns()
    assert [row[:2] for row in stored] == [(41, 7), (42, 8), (None, None)]
    assert [_json(row[2]) for row in stored] == [
        None, {"subject": "Hi"}, {"send_id": "A-1", "step_id": "2"}]
    _another_process()
    events = db.session.scalars(sa.select(Event).order_by(Event.id)).all()
    assert [e.details for e in events] == [
        {"send_id": "41", "step_id": 7}, {"send_id": "42", "step_id": 8, "subject": "Hi"},
        {"send_id": "A-1", "step_id": "2"}]
    assert db.session.scalars(sa.select(Event.type).where(Event.send_id == 42)).all() \
        == ["email_sent"]


def test_the_migration_moves_send_and_step_out_of_data_and_back(app):
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    downgrade(revision="0027a_email_firsts")
    opened, sent, custom = (event_types.code_of(t)
                            for t in ("email_opened", "email_sent", "custom.call"))
    docs = [{"send_id": "5", "step_id": 2}, {"send_id": "6", "step_id": 3, "subject": "Hi"},
            {"send_id": "007", "step_id": 2.5}, {"send_id": "9", "link_index": 2}]
    for code, doc in zip((opened, sent, custom, opened), docs, strict=True):
        db.session.execute(sa.text(
            "INSERT INTO events (lead_id, type, occurred_at, data, is_bot) "
            "VALUES (:lead, :type, '2026-01-01 10:00:00', :data, false)"),
            {"lead": lead.id, "type": code, "data": json.dumps(doc)})
    db.session.commit()
    upgrade()
    _another_process()

    stored = _send_columns()
    assert [row[:2] for row in stored] == [(5, 2), (6, 3), (None, None), (9, None)]
    assert [_json(row[2]) for row in stored] == [
        None, {"subject": "Hi"}, {"send_id": "007", "step_id": 2.5}, {"link_index": 2}]
    events = db.session.scalars(sa.select(Event).order_by(Event.id)).all()
    assert [e.details for e in events] == docs
    db.session.rollback()  # no open transaction in the way of the ALTER TABLE

    downgrade(revision="0027a_email_firsts")
    back = db.session.execute(sa.text("SELECT data FROM events ORDER BY id")).scalars().all()
    assert [_json(d) for d in back] == docs
    db.session.rollback()
    upgrade()
