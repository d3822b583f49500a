"""What a view of a live landing page reuses: the page itself, and its whole render.

Page views read the page, its campaign, form (and fields) and asset from a per-process cache:
a view then needs no database at all. Entries live `LANDING_PAGE_CACHE_SECONDS` (other
processes' edits show within that), and any change to those tables flushed by this process
empties the cache at once. Cached objects are detached and fully loaded, so they are only read;
submits and thank-you pages always read the database.

A view of a live page is the same bytes for every visitor (no session, no cookie, no
per-visitor value: see `forms.hosted`), so the whole answer is kept with its ETag
(`Rendered`) and served by `campaigns.fastpath` before the request reaches Flask. It lives
exactly as long as the cached page it was rendered from.

When the database refuses (down, silent past its timeouts), a page whose copy has expired is
served from that copy (stale-if-error): a visitor can still submit while submits go to the
spill journal (`forms.spill`), however long the outage lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, joinedload

from app.db import db
from app.privacy.models import ConsentPurpose, ConsentText
from campaigns.models import Asset, Campaign, LandingPage
from forms.models import Form, FormConsent, FormField

# The form's consent checkboxes are part of the page: their purposes' texts too.
_CACHED_MODELS = (LandingPage, Campaign, Form, FormField, FormConsent, ConsentPurpose,
                  ConsentText, Asset)
_lock = threading.Lock()
log = logging.getLogger(__name__)
MAX_ENTRIES = 1000
_GENERATION = None  # the cache dict's key for its generation: bumped by every change


def _page_query(slug: str):
    """The page with its campaign, asset, form, the form's fields and consent purposes with
    their texts (all needed to render it or take a submission)."""
    form = joinedload(LandingPage.form)
    return (sa.select(LandingPage).where(LandingPage.slug == slug)
            .options(joinedload(LandingPage.campaign), joinedload(LandingPage.asset),
                     form.joinedload(Form.fields),
                     form.joinedload(Form.consents).joinedload(FormConsent.purpose)
                     .joinedload(ConsentPurpose.texts)))


def load_page(session, slug: str) -> LandingPage | None:
    """One query (the fields are joined, hence `unique`)."""
    return session.execute(_page_query(slug)).unique().scalar_one_or_none()


@dataclass(frozen=True)
class Rendered:
    """A live page's whole answer for anonymous visitors, and its validator."""

    body: bytes
    etag: str


def _cache(app: Flask | None = None) -> dict:
    return (app or current_app).extensions.setdefault("landing_page_cache", {})


def _ttl() -> float:
    return float(current_app.config.get("LANDING_PAGE_CACHE_SECONDS", 0) or 0)


def generation() -> int:
    """Bumped by every flushed change to what is cached; -1 while the cache is off."""
    return _cache().get(_GENERATION, 0) if _ttl() > 0 else -1


def cached_page(slug: str) -> LandingPage | None:
    """The page at `slug` or None: a read-only copy."""
    ttl = _ttl()
    if ttl <= 0:
        return load_page(db.session, slug)
    cache = _cache()
    now = time.monotonic()
    hit = cache.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1]
    current = cache.get(_GENERATION, 0)
    try:
        # Its own short session: nothing this request does (a commit) can expire these objects.
        with Session(db.engine, expire_on_commit=False) as session:
            page = load_page(session, slug)  # closing ends the transaction, no expiry
    except (DBAPIError, sa.exc.TimeoutError) as exc:  # or every pooled connection busy
        if hit is None:
            raise
        log.warning("landing page %s: the database refused (%s); served from the copy read "
                    "%.0f s ago", slug, type(exc).__name__, now - hit[0] + ttl)
        return hit[1]
    _put(cache, slug, (now + ttl, page), current)
    return page


def rendered_for(slug: str, app: Flask | None = None) -> Rendered | None:
    """The render of the live page at `slug`, while its cached page is fresh (`app`: outside
    an app context, the WSGI fast path's)."""
    cache = _cache(app)
    hit = cache.get(("render", slug))
    if hit is None or hit[0] <= time.monotonic():
        return None
    return hit[1]


def keep_rendered(slug: str, rendered: Rendered, generation: int) -> None:
    """Keep `rendered` as long as its page, unless a change was flushed since `generation`
    (read before the page was): it could then show what is no longer there."""
    if generation < 0:  # the cache is off
        return
    cache = _cache()
    page = cache.get(slug)
    if page is not None:
        _put(cache, ("render", slug), (page[0], rendered), generation)


def _put(cache: dict, key, value, generation: int) -> None:
    with _lock:
        if cache.get(_GENERATION, 0) != generation:  # a change was flushed meanwhile
            return
        if len(cache) > MAX_ENTRIES:  # many slugs (404s): start again, same generation
            cache.clear()
            cache[_GENERATION] = generation
        cache[key] = value


@sa.event.listens_for(Session, "after_flush")
def _forget_pages(session: Session, flush_context) -> None:
    """A flushed change to a page, campaign, form, field or asset empties the cache."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _CACHED_MODELS):
            try:
                cache = _cache()
            except RuntimeError:  # no app context: nothing cached here
                return
            with _lock:
                generation = cache.get(_GENERATION, 0) + 1
                cache.clear()
                cache[_GENERATION] = generation
            return
