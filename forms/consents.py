"""Consent per purpose on forms: which purposes a form asks about, and recording the answers.

The checkboxes are built by `forms.builder` (one per `FormConsent`, labelled with the purpose's
current text); a ticked box becomes a grant in the consent ledger (`app.privacy.consent`) with
the exact text version the form showed, the submitter's IP and the form's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from app.privacy import consent
from app.privacy.models import ConsentPurpose, ConsentText
from forms.builder import CONSENT, form_class
from forms.models import Form, FormConsent


def record(form: Form, lead: Lead, data: Mapping[str, Any], ip: str,
           at: datetime | None = None, *, opt_in: bool = True) -> int:
    """Grant every purpose whose box was ticked; returns how many. Also lifts the suppression of
    an erased address: ticking a consent box is the person opting in again themselves (not
    with `opt_in` off: a double opt-in submit, which only its confirmation shows was them;
    see `opt_in_confirmed`). `at`: when the person submitted (None: now); the text is the one
    the form showed then."""
    granted = 0
    for name, purpose_id, text_id in form_class(form).consent_purposes:
        if not data.get(name):
            continue
        purpose = db.session.get(ConsentPurpose, purpose_id)
        if purpose is None:
            continue
        text = consent.text_at(purpose, at) if at is not None else None
        if text is None and text_id is not None:
            text = db.session.get(ConsentText, text_id)
        consent.grant(lead, purpose, source="form", ip=ip, text=text,
                      detail=f"form “{form.name}”", at=at)
        granted += 1
    if opt_in and (granted or (form.consent_enabled and data.get(CONSENT))):
        from app.privacy.erased import opted_in_again

        opted_in_again(lead, f"form “{form.name}”")
    return granted


def opt_in_confirmed(form: Form, lead: Lead, consent_given: bool) -> bool:
    """A double opt-in submit was confirmed: if it gave consent (the form's box, or a purpose
    the lead now holds), the person opted in themselves; an erased address is lifted."""
    if not (consent_given or consent.granted_purpose_ids(lead.id)):
        return False
    from app.privacy.erased import opted_in_again

    return opted_in_again(lead, f"form “{form.name}”, confirmed")


def configure(form: Form, choices: Mapping[int, str]) -> None:
    """Set the form's purposes from `{purpose_id: "ask" | "required" | ""}`; order kept by id.
    Touches the form so its cached class is rebuilt."""
    keep = {pid: how for pid, how in choices.items() if how in ("ask", "required")}
    for existing in list(form.consents):
        if existing.purpose_id not in keep:
            form.consents.remove(existing)
    have = {c.purpose_id: c for c in form.consents}
    for position, (pid, how) in enumerate(sorted(keep.items())):
        row = have.get(pid) or FormConsent(purpose_id=pid)
        row.required = how == "required"
        row.position = position
        if pid not in have:
            form.consents.append(row)
    form.touch()


def on_text_changed(purpose: ConsentPurpose) -> None:
    """A purpose has a new text: forms asking for it rebuild their checkboxes."""
    forms = db.session.scalars(sa.select(Form).join(FormConsent)
                               .where(FormConsent.purpose_id == purpose.id))
    for form in forms:
        form.touch()
