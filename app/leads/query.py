"""Which leads match a filter, in which order, one keyset page at a time: the leads list,
its saved views and bulk actions, and (stable on purpose) the API's lead listing.

    lq = LeadQuery.parse(request.args)      # or LeadQuery(stages=("mql",), sort="fit")
    lq.errors                               # {"eng_min": "…"}: said on the page, never a 500
    leads, next_cursor = page(lq, cursor)   # no OFFSET; the cursor is the last row's sort key
    for ids in id_batches(lq): …            # every match, by id, for bulk work

Engagement is compared as of now (`app.leads.engagement`). The campaign filter is "has had
activity in the campaign" (`app.leads.campaign_members`, kept from the events by triggers). The source (channel) and UTM source
are the lead's first touch as the reports keep it (`report_leads`, refreshed every minute).
No page counts the whole table: `count_upto` stops at a cap.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads import engagement
from app.leads.campaign_members import LeadCampaign
from app.leads.models import Lead, Stage

SORTS: dict[str, tuple[Any, ...]] = {
    "created": (Lead.created_at,),
    "activity": (Lead.last_activity_at,),
    "fit": (Lead.fit_score,),
    "engagement": (Lead.engagement_key,),
    "name": (Lead.last_name, Lead.first_name),
}
SORT_LABELS = {"created": "Created", "activity": "Last activity", "fit": "Fit",
               "engagement": "Engagement", "name": "Name"}
GRADES = ("A", "B", "C", "D", "F")
DEFAULT_GRADE_BANDS = (30, 20, 10, 0)  # minimum fit points of A, B, C, D (the rest F)
SUPPRESSED = ("yes", "no")
# The reports' per-lead facts: first-touch channel and UTM source (app/reports owns them).
_facts = sa.table("report_leads", sa.column("lead_id", sa.Integer),
                  sa.column("channel", sa.String), sa.column("utm_source", sa.String))


def grade_bands() -> tuple[int, ...]:
    """Minimum fit points of grades A–D, from the scoring rules when scoring registered them."""
    from flask import current_app

    provider = current_app.extensions.get("fit_grade_bands")
    return tuple(provider()) if provider else DEFAULT_GRADE_BANDS


class QueryError(ValueError):
    pass


def _date(value: str, name: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "Use a date like 2026-03-31."
        return None


def _number(value: str, name: str, errors: dict[str, str]) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        errors[name] = "Use a number, e.g. 25."
        return None
    if not math.isfinite(number):
        errors[name] = "Use a number, e.g. 25."
        return None
    return number


def _instant(value: str, name: str, errors: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        errors[name] = "Use a date and time with a zone, like 2026-03-31T09:00:00Z."
        return None
    return found


def _int(value: str, name: str, errors: dict[str, str]) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        errors[name] = "Choose one from the list."
        return None
    return int(value)


@dataclass(frozen=True)
class LeadQuery:
    q: str = ""
    stages: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    eng_min: float | None = None
    eng_max: float | None = None
    campaign: int | None = None
    owner: str = ""  # a user id, or "none"
    source: str = ""  # first-touch channel: hosted, embed, import, api …
    utm_source: str = ""
    created_from: date | None = None
    created_to: date | None = None
    active_from: date | None = None
    active_to: date | None = None
    created_since: datetime | None = None  # exact instants (the API's `created_since`, …)
    updated_since: datetime | None = None
    suppressed: str = ""  # "", "yes", "no"
    sort: str = "created"
    direction: str = "desc"
    errors: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, args: Mapping[str, Any]) -> LeadQuery:
        """From a query string (a MultiDict, or a dict of lists / strings). Bad values are
        left out and named in `errors`."""
        def many(name: str) -> list[str]:
            getlist = getattr(args, "getlist", None)
            raw = getlist(name) if getlist else args.get(name, [])
            raw = [raw] if isinstance(raw, str) else list(raw or [])
            return [str(v).strip() for v in raw if str(v).strip()]

        def one(name: str) -> str:
            values = many(name)
            return values[0] if values else ""

        errors: dict[str, str] = {}
        stages = tuple(s for s in many("stage") if s in {st.value for st in Stage})
        if len(stages) != len(many("stage")):
            errors["stage"] = "Unknown stage."
        grades = tuple(g.upper() for g in many("grade") if g.upper() in GRADES)
        if len(grades) != len(many("grade")):
            errors["grade"] = "Grades are A to F."
        owner = one("owner")
        if owner and owner != "none" and not owner.isdigit():
            errors["owner"] = "Choose an owner from the list."
            owner = ""
        suppressed = one("suppressed")
        if suppressed and suppressed not in SUPPRESSED:
            errors["suppressed"] = "Choose yes or no."
            suppressed = ""
        sort = one("sort") or "created"
        if sort not in SORTS:
            errors["sort"] = "Unknown sort."
            sort = "created"
        direction = one("dir") or ("asc" if sort == "name" else "desc")
        if direction not in ("asc", "desc"):
            direction = "desc"
        found = cls(
            q=one("q")[:200], stages=stages, grades=grades,
            eng_min=_number(one("eng_min"), "eng_min", errors),
            eng_max=_number(one("eng_max"), "eng_max", errors),
            campaign=_int(one("campaign"), "campaign", errors), owner=owner,
            source=one("source")[:20], utm_source=one("utm_source")[:100],
            created_from=_date(one("created_from"), "created_from", errors),
            created_to=_date(one("created_to"), "created_to", errors),
            active_from=_date(one("active_from"), "active_from", errors),
            active_to=_date(one("active_to"), "active_to", errors),
            created_since=_instant(one("created_since"), "created_since", errors),
            updated_since=_instant(one("updated_since"), "updated_since", errors),
            suppressed=suppressed, sort=sort, direction=direction, errors=errors)
        return found

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string of this filter (for links, saved views, the next page)."""
        me = replace(self, **changes) if changes else self
        out: dict[str, Any] = {}
        names = {"stages": "stage", "grades": "grade", "direction": "dir"}
        for f in fields(me):
            if f.name == "errors":
                continue
            value = getattr(me, f.name)
            if value in (None, "", ()) or (f.name == "sort" and value == "created"):
                continue
            if f.name == "direction" and value == ("asc" if me.sort == "name" else "desc"):
                continue
            if isinstance(value, date):
                value = value.isoformat()
            out[names.get(f.name, f.name)] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def is_filtered(self) -> bool:
        return bool(set(self.args()) - {"sort", "dir"})

    def conditions(self, now: datetime | None = None, *, campaign: bool = True) -> list[Any]:
        """The filter as WHERE clauses on leads (`campaign=False`: all but the campaign, for
        a statement that walks the campaign's members itself)."""
        now = now or utcnow()
        where: list[Any] = []
        if self.q:
            text = self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(sa.or_(Lead.email.like(f"{text}%", escape="\\"),
                                sa.func.lower(Lead.company).like(f"{text}%", escape="\\"),
                                sa.func.lower(Lead.last_name).like(f"{text}%", escape="\\"),
                                sa.func.lower(Lead.first_name).like(f"{text}%", escape="\\")))
        if self.stages:
            where.append(Lead.stage.in_(self.stages))
        if self.grades:
            where.append(sa.or_(*(_grade_range(g) for g in self.grades)))
        if self.eng_min is not None:
            where.append(engagement.sql_at_least(Lead.engagement_key, self.eng_min, now))
        if self.eng_max is not None:
            where.append(engagement.sql_below(Lead.engagement_key, self.eng_max, now))
        if self.campaign is not None and campaign:
            # Has had activity in the campaign (app.leads.campaign_members): one probe of
            # the primary key (lead_id, campaign_id).
            where.append(sa.exists().where(LeadCampaign.lead_id == Lead.id,
                                           LeadCampaign.campaign_id == self.campaign))
        if self.owner == "none":
            where.append(Lead.owner_id.is_(None))
        elif self.owner:
            where.append(Lead.owner_id == int(self.owner))
        if self.source or self.utm_source:
            facts = sa.select(_facts.c.lead_id).where(_facts.c.lead_id == Lead.id)
            if self.source:
                facts = facts.where(_facts.c.channel == self.source)
            if self.utm_source:
                # Stored lower-case (app.reports.facts.utm_of): compared as it is, so the
                # index (utm_source, lead_id) serves it.
                facts = facts.where(_facts.c.utm_source == self.utm_source.lower())
            where.append(sa.exists(facts))
        for column, low, high in ((Lead.created_at, self.created_from, self.created_to),
                                  (Lead.last_activity_at, self.active_from, self.active_to)):
            if low is not None:
                where.append(column >= datetime.combine(low, time.min, UTC))
            if high is not None:
                where.append(column <= datetime.combine(high, time.max, UTC))
        if self.created_since is not None:
            where.append(Lead.created_at >= self.created_since)
        if self.updated_since is not None:
            where.append(Lead.updated_at >= self.updated_since)
        if self.suppressed == "yes":
            where.append(sa.or_(Lead.unsubscribed_at.is_not(None), Lead.bounced_at.is_not(None)))
        elif self.suppressed == "no":
            where.append(sa.and_(Lead.unsubscribed_at.is_(None), Lead.bounced_at.is_(None)))
        return where

    def statement(self, now: datetime | None = None) -> sa.Select:
        return sa.select(Lead).where(*self.conditions(now))


def grade_of(points: int, bands: tuple[int, ...] | None = None) -> str:
    """The fit grade of `points`: the first grade whose minimum it reaches (F below them)."""
    for grade, low in zip(GRADES, bands if bands is not None else grade_bands(), strict=False):
        if points >= low:
            return grade
    return GRADES[-1]


def _grade_range(grade: str) -> Any:
    bands = list(grade_bands())
    index = GRADES.index(grade)
    low = bands[index] if index < len(bands) else None
    high = bands[index - 1] if 0 < index <= len(bands) else None
    clauses = []
    if low is not None:
        clauses.append(Lead.fit_score >= low)
    if high is not None:
        clauses.append(Lead.fit_score < high)
    return sa.and_(*clauses) if clauses else sa.true()


def _sort_columns(lq: LeadQuery) -> tuple[Any, ...]:
    return (*SORTS[lq.sort], Lead.id)


def _encode(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


_CURSOR_KINDS: dict[str, list[tuple[type, ...]]] = {
    "created": [(datetime,)], "activity": [(datetime,)], "fit": [(int,)],
    "engagement": [(int, float)], "name": [(str,), (str,)]}


def _decode(cursor: str, lq: LeadQuery) -> list[Any] | None:
    """The sort key a cursor carries, when it is one of `_encode`'s for this sort; else None
    (a forged value never reaches the database as a wrong type)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        return None
    if not isinstance(values, list) or len(values) != len(_sort_columns(lq)):
        return None
    if lq.sort in ("created", "activity"):
        try:
            values[0] = datetime.fromisoformat(values[0])
        except (TypeError, ValueError):
            return None
        if values[0].tzinfo is None:
            return None
    kinds = [*_CURSOR_KINDS[lq.sort], (int,)]  # the sort's columns, then the id
    for value, kind in zip(values, kinds, strict=True):
        if not isinstance(value, kind) or isinstance(value, bool):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and not -2**63 < value < 2**63:
            return None
        if isinstance(value, str) and ("\x00" in value or not _encodable(value)):
            return None
    return values


def _encodable(text: str) -> bool:
    """False for text with half a UTF-16 pair (a `\\ud800` escape): no database takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cursor_is_valid(lq: LeadQuery, cursor: str) -> bool:
    """Whether `cursor` is a next-page cursor of this sort (`page` starts again otherwise)."""
    return _decode(cursor, lq) is not None


def _row_key(lead: Lead, lq: LeadQuery) -> list[Any]:
    return [getattr(lead, c.key) for c in SORTS[lq.sort]] + [lead.id]


def _walk(lq: LeadQuery, now: datetime | None) -> tuple[sa.Select, tuple[Any, ...]]:
    """The page's statement and the columns it is ordered and continued by. The campaign
    filter in the default order walks the campaign's members newest first from their index
    (campaign_id, created_at, lead_id): the member's created_at and lead_id are the lead's, so
    the order and the cursor are the same as `_sort_columns`'."""
    if lq.campaign is not None and lq.sort == "created":
        statement = (sa.select(Lead).join(LeadCampaign, LeadCampaign.lead_id == Lead.id)
                     .where(LeadCampaign.campaign_id == lq.campaign,
                            *lq.conditions(now, campaign=False)))
        return statement, (LeadCampaign.created_at, LeadCampaign.lead_id)
    return lq.statement(now), _sort_columns(lq)


def page(lq: LeadQuery, cursor: str | None = None, size: int = 50,
         now: datetime | None = None) -> tuple[list[Lead], str | None]:
    """One page of matches after `cursor` (a bad cursor starts again), and the next cursor."""
    statement, columns = _walk(lq, now)
    after = _decode(cursor, lq) if cursor else None
    if after is not None:
        row = sa.tuple_(*columns)
        statement = statement.where(row > sa.tuple_(*after) if lq.direction == "asc"
                                    else row < sa.tuple_(*after))
    order = [c.asc() if lq.direction == "asc" else c.desc() for c in columns]
    rows = list(db.session.scalars(statement.order_by(*order).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (_encode(_row_key(rows[-1], lq)) if more and rows else None)


def count_upto(lq: LeadQuery, cap: int = 10_000, now: datetime | None = None) -> int:
    """How many match, counting at most `cap` + 1 (the page says "more than 10,000"). With a
    campaign, counted from the campaign's members (from the index alone when it is the only
    filter)."""
    if lq.campaign is not None:
        others = lq.conditions(now, campaign=False)
        members = sa.select(LeadCampaign.lead_id).where(LeadCampaign.campaign_id == lq.campaign)
        if others:
            members = members.join(Lead, Lead.id == LeadCampaign.lead_id).where(*others)
        inner = members.limit(cap + 1).subquery()
    else:
        inner = sa.select(Lead.id).where(*lq.conditions(now)).limit(cap + 1).subquery()
    return db.session.scalar(sa.select(sa.func.count()).select_from(inner)) or 0


def id_batches(lq: LeadQuery, size: int = 500, after_id: int = 0,
               now: datetime | None = None,
               created_by: datetime | None = None) -> Iterator[list[int]]:
    """Every matching lead id, ascending, `size` at a time (keyset by id: resumable); with
    `created_by`, only leads that existed then."""
    now = now or utcnow()  # one "now" for the whole run: engagement filters stay put
    existed = [Lead.created_at <= created_by] if created_by is not None else []
    while True:
        ids = list(db.session.scalars(sa.select(Lead.id).where(*lq.conditions(now), *existed,
                                                               Lead.id > after_id)
                                      .order_by(Lead.id).limit(size)))
        if not ids:
            return
        yield ids
        after_id = ids[-1]
