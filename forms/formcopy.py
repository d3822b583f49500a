"""The embed API's last good copy of each form, for submits while the database refuses.

A submit to `POST /api/forms/<key>/submissions` reads its form from the database, as always.
When that read fails (the database down, silent past its timeouts, out of connections), the
copy this process kept is used instead (stale-if-error), so the submit can still be validated
and go to the spill journal (`forms.spill`): a 202, not a 503. The copy is detached and fully
loaded (fields, consent purposes and their texts), read in a session of its own, and made
again at most every `COPY_SECONDS` while the database answers (one extra read a minute per
form and process, none per submit). A process that has not taken a submit for the form
since it started has no copy: it answers 503, as for any request the database must answer.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from app.db import db
from app.privacy.models import ConsentPurpose
from forms.models import Form, FormConsent

log = logging.getLogger(__name__)

COPY_SECONDS = 60
_lock = threading.Lock()


def _copies() -> dict[str, tuple[float, Form]]:
    return current_app.extensions.setdefault("form_copies", {})


def _query(key: str):
    """The form with all a submit reads of it: nothing is loaded later, when the database
    may have gone (the submit then still takes its spill-journal path)."""
    return (sa.select(Form).where(Form.key == key)
            .options(selectinload(Form.fields),
                     selectinload(Form.consents).selectinload(FormConsent.purpose)
                     .selectinload(ConsentPurpose.texts)))


def _load_copy(key: str) -> Form | None:
    with Session(db.engine, expire_on_commit=False) as session:
        return session.scalar(_query(key))


def form_by_key(key: str) -> Form | None:
    """The form with this key (None: no such form); while the database refuses, this
    process's last copy of it. Raises the database error when there is no copy."""
    copies = _copies()
    try:
        form = db.session.scalar(_query(key))
        if form is not None:
            kept = copies.get(key)
            if kept is None or kept[0] < time.monotonic():
                copy = _load_copy(key)
                if copy is not None:
                    with _lock:
                        copies[key] = (time.monotonic() + COPY_SECONDS, copy)
        return form
    except DBAPIError as exc:
        kept = copies.get(key)
        if kept is None:
            raise
        db.session.rollback()
        log.warning("form %s: the database refused (%s); the submit uses this process's copy",
                    key, type(exc).__name__)
        return kept[1]
