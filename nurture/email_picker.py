"""The "email" picker (app.pickers): a sequence's email step, chosen by its subject and sequence
("Welcome › 2. Your guide"), e.g. for a scoring rule that counts clicks in one email."""

from __future__ import annotations

from collections.abc import Sequence as Ids
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.pickers import Option, Picker
from nurture.models import Sequence, Step, StepKind

_COLUMNS = (Step.id, Step.position, Step.subject, Sequence.name)


def _query(*where: Any) -> sa.Select:
    return (sa.select(*_COLUMNS).join(Sequence, Sequence.id == Step.sequence_id)
            .where(Step.kind == StepKind.EMAIL.value, *where))


def _label(row: Any) -> str:
    return f"{row.name} › {row.position + 1}. {row.subject or '(no subject)'}"


def search(text: str, limit: int) -> list[Option]:
    where = []
    if text:
        where.append(sa.or_(Step.subject.icontains(text, autoescape=True),
                            Sequence.name.icontains(text, autoescape=True)))
    rows = db.session.execute(_query(*where).order_by(Sequence.name, Sequence.id, Step.position)
                              .limit(limit)).all()
    return [Option(row.id, _label(row)) for row in rows]


def lookup(ids: Ids[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {row.id: _label(row) for row in db.session.execute(_query(Step.id.in_(ids))).all()}


def exact(text: str) -> int | None:
    ids = db.session.scalars(sa.select(Step.id).where(
        Step.kind == StepKind.EMAIL.value, sa.func.lower(Step.subject) == text.lower())
        .limit(2)).all()
    return ids[0] if len(ids) == 1 else None


PICKER = Picker("email", "email", search, lookup, exact)
