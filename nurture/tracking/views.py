"""The public tracking endpoints: the open pixel, tracked links, and site visits.

None of them writes to the database: each hit is pushed to the Redis buffer (see `buffer`) and
the batch writer stores it within a couple of seconds. The click handler reads the stored link
(its URL, never one from the request), through a small cache.

The pixel and the click are normally answered before Flask sees them, by `fastpath` (token,
one Redis call, answer). These views are the reference and the fallback: the fast path hands
them what it does not answer itself (a bad click token, a target Redis does not have, Redis
trouble), marking the request environ with `LINK_MISS` / `REDIS_DOWN`.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from typing import Any, cast

from flask import Blueprint, Response, abort, current_app, render_template, request
from werkzeug.utils import redirect

from app import visitors
from nurture.tracking import buffer, links, tokens

log = logging.getLogger(__name__)

bp = Blueprint("tracking", __name__, url_prefix="/t", template_folder="templates")

# The smallest transparent GIF: 1×1, one colour, fully transparent (43 bytes).
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
       b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
assert len(GIF) == 43
_VALID_VID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
GIF_HEADERS = (("Content-Type", "image/gif"), ("Content-Length", str(len(GIF))),
               ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0"),
               ("Pragma", "no-cache"), ("Expires", "0"))
# Set by the fast path on requests it hands over: Redis just failed (queue the hit in memory
# without waiting on Redis again) / the target is not in Redis (put it there once read).
REDIS_DOWN = "kindling.tracking.redis_down"
LINK_MISS = "kindling.tracking.link_miss"


def gif() -> Response:
    return Response(GIF, headers=list(GIF_HEADERS))


def honeypot_response() -> Response:
    return Response("", status=204, headers={"Cache-Control": "no-store"})


def redirect_response(url: str) -> Response:
    """The click's answer, before the visitor cookie."""
    response = cast(Response, redirect(url, code=302, Response=Response))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token stays ours
    return response


def privacy_signal() -> bool:
    """Global Privacy Control or Do Not Track, when the workspace honours them."""
    if not current_app.config["TRACKING_HONOUR_GPC"]:
        return False
    return request.headers.get("Sec-GPC") == "1" or request.headers.get("DNT") == "1"


def hit_event(kind: str, method: str, user_agent: str | None, ip: str | None,
              **fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "kind": kind, "ts": time.time(), "method": method,
            "ua": (user_agent or "")[:500], "ip": ip, **fields}


def _hit(kind: str, **fields: Any) -> None:
    event = hit_event(kind, request.method, request.user_agent.string, request.remote_addr,
                      **fields)
    try:
        if request.environ.get(REDIS_DOWN):
            buffer.get().hold(event)
        else:
            buffer.push(event)
    except Exception:  # a tracking hiccup must never break the image or the redirect
        log.exception("tracking: could not buffer a %s hit", kind)


@bp.route("/o/<token>.gif")
@bp.route("/o/<token>")
def pixel(token: str):
    send_id = tokens.read_open(token)
    if send_id is not None:
        _hit("open", send_id=send_id)
    return gif()  # the same answer for any token: no oracle


@bp.route("/c/<token>")
def click(token: str):
    parsed = tokens.read_click(token)
    if parsed is None:
        abort(400)
    send_id, index = parsed
    if index == tokens.HONEYPOT_INDEX:
        _hit("click", send_id=send_id, index=index, honeypot=True)
        return honeypot_response()
    url = links.target(send_id, index)
    if url is None:
        abort(404)
    if request.environ.get(LINK_MISS):  # the next click of this link stays out of Flask
        links.publish([(send_id, index, url)])
    vid = None if privacy_signal() else visitors.visitor_id()
    _hit("click", send_id=send_id, index=index, url=url, vid=vid)
    response = redirect_response(url)
    if vid:
        visitors.remember(response, vid)
    return response


@bp.route("/v.js")
def script():
    body = render_template("tracking/v.js", base_url=current_app.config["BASE_URL"],
                           honour_gpc=bool(current_app.config["TRACKING_HONOUR_GPC"]))
    response = Response(body, mimetype="application/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _valid_vid(value: str | None) -> str | None:
    return value if value and _VALID_VID.match(value) else None


@bp.route("/v.gif")
def visit():
    response = gif()
    private = privacy_signal()
    # Without NUL characters (anyone can send this; PostgreSQL stores none: a batch holding
    # one would fail on every run of the writers).
    url = (request.args.get("u") or request.referrer or "").replace("\x00", "")
    if not url.lower().startswith(("http://", "https://")):
        return response
    cookie_vid = _valid_vid(request.cookies.get(visitors.COOKIE))
    query_vid = _valid_vid(request.args.get("vid"))
    vid = None if private else cookie_vid or query_vid or secrets.token_urlsafe(18)
    # A landing page of ours counts its own view (`page_viewed`), anonymous under GPC/DNT.
    claimed = visitors.beacon_claimed(request.args, url[:2000], vid)
    if vid is None:
        return response
    if not claimed:
        alt = query_vid if cookie_vid and query_vid and query_vid != cookie_vid else None
        _hit("visit", vid=vid, alt_vid=alt, url=url[:2000],
             ref=(request.args.get("r") or "").replace("\x00", "")[:2000])
    # Requests from the marketer's site are third-party here: SameSite=None needs Secure.
    secure = visitors.secure(current_app.config, request.scheme)
    response.set_cookie(visitors.COOKIE, vid, max_age=visitors.MAX_AGE, httponly=True,
                        secure=secure, samesite="None" if secure else "Lax")
    return response
