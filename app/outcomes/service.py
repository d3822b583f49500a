"""Recording an outcome — opportunity, customer or lost, with the deal's amount — the one way
the lead page, the CRM webhook and the API all take.

    record_outcome(lead, stage, amount, currency, external_id, actor=..., actor_user_id=...,
                   reason=...) -> Outcome

The lifecycle move goes through `app.leads.lifecycle.move` (a `StageChange` with its actor and
reason); the deal is kept as an `Outcome` row. A lead already at that stage gets no second move,
but a new deal (another external id or amount) is still kept: a customer's second purchase. The
same deal told twice (same external id, stage, amount and currency) is recorded once; without
an external id, a deal with the stage, amount and currency of the lead's last deal (which had
none either) is that deal told again: a second purchase of the same amount needs its deal id.

Nothing commits here: the caller owns the transaction. Bad input raises `OutcomeError`, with
`field` naming the input at fault, and changes nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.lifecycle import ForbiddenMove, move
from app.leads.models import Lead, Stage
from app.leads.service import record_event
from app.outcomes.models import Outcome

OUTCOME_STAGES = (Stage.OPPORTUNITY.value, Stage.CUSTOMER.value, Stage.LOST.value)
MAX_AMOUNT = Decimal("999999999999.99")
EXTERNAL_ID_MAX = 200
REASON_MAX = 2000
THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


class OutcomeError(ValueError):
    """The outcome cannot be recorded; nothing changed. `field` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def parse_stage(value: Any) -> str:
    stage = str(value or "").strip().lower()
    if stage not in OUTCOME_STAGES:
        raise OutcomeError(f"“{str(value)[:40]}” is not an outcome stage: use "
                           f"{', '.join(OUTCOME_STAGES)}.", "stage")
    return stage


def parse_amount(value: Any) -> Decimal | None:
    """A deal amount: a number (or numeric text) from 0 up, at most two decimals. None/blank
    means no amount."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise OutcomeError("The amount must be a number.", "amount")
    text = str(value).strip()
    if isinstance(value, str) and "," in text:
        if not THOUSANDS.fullmatch(text):  # "999,50": a decimal comma, not 99,950
            raise OutcomeError(f"“{text[:40]}” is not a number: write decimals with a point "
                               "(999.50); a comma may only group thousands (12,000).",
                               "amount")
        text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise OutcomeError(f"“{str(value)[:40]}” is not a number.", "amount") from None
    if not amount.is_finite() or amount < 0:
        raise OutcomeError("The amount must be zero or more.", "amount")
    if amount > MAX_AMOUNT:
        raise OutcomeError("The amount is too large.", "amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise OutcomeError("The amount has more than two decimals.", "amount")
    return amount.quantize(Decimal("0.01"))


def parse_currency(value: Any, *, required: bool) -> str:
    code = str(value or "").strip().upper()
    if not code:
        if required:
            raise OutcomeError("Say the currency of the amount (an ISO code such as EUR).",
                               "currency")
        return ""
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise OutcomeError(f"“{str(value)[:10]}” is not an ISO 4217 currency code.", "currency")
    return code


def parse_external_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise OutcomeError("The external id must be text.", "external_id")
    text = str(value).strip()
    if len(text) > EXTERNAL_ID_MAX:
        raise OutcomeError(f"The external id is longer than {EXTERNAL_ID_MAX} characters.",
                           "external_id")
    return text or None


def _default_reason(stage: str, actor: str, amount: Decimal | None, currency: str,
                    external_id: str | None) -> str:
    text = f"{Stage(stage).label} reported by {actor}"
    details = [f"deal {external_id}" if external_id else "",
               f"{amount:,.2f} {currency}".strip() if amount is not None else ""]
    details = [d for d in details if d]
    return f"{text} ({', '.join(details)})" if details else text


def record_outcome(lead: Lead, stage: str, amount: Any = None, currency: Any = None,
                   external_id: Any = None, *, actor: str, actor_user_id: int | None = None,
                   reason: str = "") -> Outcome:
    """Move `lead` to an outcome stage and keep the deal. Does not commit.

    `actor` is who tells: "user" (with `actor_user_id`), "crm", "api". Raises OutcomeError
    (nothing changed) for an unknown stage, a bad amount, currency or external id, an external
    id that belongs to another lead, or a move the lifecycle forbids (field "stage")."""
    stage = parse_stage(stage)
    amount = parse_amount(amount)
    currency = parse_currency(currency, required=amount is not None)
    external_id = parse_external_id(external_id)
    reason = (reason or "").strip()[:REASON_MAX] or _default_reason(
        stage, actor, amount, currency, external_id)
    if external_id is not None:
        earlier = db.session.scalars(
            sa.select(Outcome).where(Outcome.external_id == external_id)
            .order_by(Outcome.id.desc())).first()
        if earlier is not None and earlier.lead_id not in (None, lead.id):
            raise OutcomeError(f"Deal {external_id} belongs to another lead.", "external_id")
    else:  # no deal id: the same as the lead's last deal, if that had none either
        earlier = db.session.scalars(
            sa.select(Outcome).where(Outcome.lead_id == lead.id)
            .order_by(Outcome.id.desc())).first()
        if earlier is not None and earlier.external_id is not None:
            earlier = None
    if (earlier is not None and lead.stage == stage and earlier.stage == stage
            and earlier.amount == amount and earlier.currency == currency):
        return earlier  # the same deal told again (a retry, a second click)
    change = None
    if lead.stage != stage:
        try:
            change = move(lead, stage, reason=reason, actor=actor, actor_user_id=actor_user_id)
        except ForbiddenMove as exc:
            raise OutcomeError(str(exc), "stage") from None
    outcome = Outcome(lead_id=lead.id, stage=stage, amount=amount, currency=currency,
                      external_id=external_id, actor=actor, actor_user_id=actor_user_id,
                      stage_change_id=change.id if change is not None else None,
                      reason=reason, recorded_at=utcnow())
    db.session.add(outcome)
    db.session.flush()
    record_event(lead, "outcome_recorded", data={
        "outcome_id": outcome.id, "stage": stage, "actor": actor,
        "amount": None if amount is None else str(amount), "currency": currency,
        "external_id": external_id, "moved": change is not None})
    return outcome


def outcomes_of(lead: Lead, limit: int = 20) -> list[Outcome]:
    return list(db.session.scalars(sa.select(Outcome).where(Outcome.lead_id == lead.id)
                                   .order_by(Outcome.recorded_at.desc(), Outcome.id.desc())
                                   .limit(limit)))
