"""The events batch's quick check answers as EventInSchema does, or leaves the item to it."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.event_batch import EventBatchSchema, EventInSchema, quick_item
from app.api.schemas import MAX_ID

SCHEMA = EventInSchema()

_text = st.one_of(st.text(max_size=8), st.text(min_size=95, max_size=105),
                  st.sampled_from(["", "a", "webinar_attended", "abc\n", "A", "a\x00b",
                                   "x" * 33, "x" * 34]))
_value = st.one_of(_text, st.integers(min_value=-1, max_value=MAX_ID + 1),
                   st.sampled_from([None, True, 1.0, 1.5, "7", [], {}]))
_data = st.one_of(
    st.dictionaries(_text, st.one_of(_value, st.lists(_value, max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), min_size=49, max_size=52),
    _value)
_items = st.fixed_dictionaries({}, optional={
    "id": _value, "type": _value, "email": _value, "lead_id": _value,
    "url": st.one_of(_value, st.text(min_size=1999, max_size=2001)),
    "data": _data,
    "occurred_at": st.one_of(_value, st.sampled_from([
        "2026-03-01T10:00:00Z", "2026-03-01T10:00:00+02:00", "2026-03-01T10:00:00",
        "2026-02-30T10:00:00Z", "yesterday"])),
    "colour": _value})


def _schema_load(item: Any) -> dict[str, Any] | None:
    try:
        return SCHEMA.load(item)
    except ma.ValidationError:
        return None


@settings(max_examples=600, deadline=None, database=None)
@given(item=st.one_of(_items, _value))
def test_the_quick_check_accepts_only_what_the_schema_loads_the_same(item):
    quick = quick_item(item)
    if quick is not None:
        assert _schema_load(item) == quick


def test_plain_items_take_the_quick_path():
    plain = {"id": "e1", "type": "webinar_attended", "lead_id": 5,
             "occurred_at": "2026-03-01T10:00:00+02:00", "url": "https://example.com/x",
             "data": {"minutes": 30, "tags": ["a"]}}
    assert quick_item(plain) == SCHEMA.load(plain)
    assert quick_item({"id": "e2", "type": "a", "email": "a@example.com"}) is not None


def test_a_bad_item_is_refused_by_the_schema_naming_its_index_and_field():
    good = {"id": "e1", "type": "a", "lead_id": 1}
    for bad, field in (({"id": "e2", "type": "a\n", "lead_id": 1}, "type"),
                       ({"id": "e2", "type": "a", "lead_id": 1, "data": {"k": "a\x00"}},
                        "data"),
                       ({"id": "e2", "type": "a", "lead_id": True}, "lead_id"),
                       ({"id": "e2", "type": "a", "lead_id": 1, "colour": "red"}, "colour")):
        try:
            EventBatchSchema().load({"events": [good, bad]})
        except ma.ValidationError as exc:
            assert field in exc.messages["events"][1], exc.messages
        else:
            raise AssertionError(f"{bad} was accepted")
