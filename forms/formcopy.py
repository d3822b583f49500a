"""The embed API's copy of each form: read once, then only its version per request.

The embedded form's definition (`GET /api/forms/<key>`) and its submits (`POST
/api/forms/<key>/submissions`) need the whole form (fields, consent purposes and their texts:
five queries). This process keeps a detached, fully loaded copy of each form it served and, per
request, reads only the form's version (one small query, in autocommit: one round trip). The
copy is used while its version is the current one and it is younger than `COPY_SECONDS` (edits
that do not bump the version, such as a consent purpose's text, show within that); otherwise it
is read again.

When the version read fails (the database down, silent past its timeouts, out of connections),
the copy is used anyway (stale-if-error), so the submit can still be validated and go to the
spill journal (`forms.spill`): a 202, not a 503, and the embedded form still loads. A process
that has not served the form since it started has no copy: it answers 503, as for any request
the database must answer.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session, selectinload

from app.db import db
from app.privacy.models import ConsentPurpose
from forms.intake import REFUSED
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


def _current_version(key: str) -> int | None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return conn.scalar(sa.select(Form.version).where(Form.key == key))


def form_by_key(key: str) -> Form | None:
    """The form with this key (None: no such form), as this process's copy; while the
    database refuses, the last copy. Raises the database error when there is no copy."""
    copies = _copies()
    kept = copies.get(key)
    try:
        version = _current_version(key)
        if version is None:
            return None
        if kept is not None and kept[0] > time.monotonic() and kept[1].version == version:
            return kept[1]
        copy = _load_copy(key)
    except REFUSED as exc:
        if kept is None:
            raise
        log.warning("form %s: the database refused (%s); the submit uses this process's copy",
                    key, type(exc).__name__)
        return kept[1]
    if copy is not None:
        with _lock:
            copies[key] = (time.monotonic() + COPY_SECONDS, copy)
    return copy
