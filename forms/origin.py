"""Token-free protection of public form posts against cross-site forgery.

Public lead forms carry no session and no CSRF token (their pages are the same bytes for every
visitor, so a CDN can serve them). A browser tells us where a post comes from instead, as Go
1.25's `net/http.CrossOriginProtection` reads it:

- `Sec-Fetch-Site: same-origin` (or `none`, typed by the user) is ours;
- any other `Sec-Fetch-Site` (`cross-site`, `same-site`) is another site's: accepted only with
  an `Origin` on the form's embed allow-list, never with our own (no browser sends that pair);
- without `Sec-Fetch-Site` (older browsers), an `Origin` equal to our own (`own_origins`: an
  https `BASE_URL` exactly, else the request's host or `BASE_URL`) or on the allow-list is
  accepted, any other refused;
- a request with neither header is not from a browser that could be tricked (curl, old
  browsers): it meets the honeypot, the time trap and the rate limit like any other post.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import current_app, request

SAFE_FETCH_SITES = frozenset({"same-origin", "none"})


DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalise(origin: str) -> str:
    """`scheme://host[:port]` in lower case, without a trailing slash and without the
    scheme's default port (browsers leave it out of `Origin`)."""
    text = origin.strip().rstrip("/").lower()
    scheme, _, rest = text.partition("://")
    port = DEFAULT_PORTS.get(scheme)
    if port and rest.endswith(f":{port}"):
        text = text[:-len(port) - 1]
    return text


def own_origins() -> set[str]:
    """This site's origins. An https `BASE_URL` (production requires one) is the public
    address: exactly its origin, so a plain-http page is not ours even when a TLS proxy
    forwards to us over http and `TRUSTED_PROXIES` is unset. Otherwise (development, an http
    `BASE_URL`): the address the request came to, and `BASE_URL`."""
    base = urlsplit(current_app.config.get("BASE_URL") or "")
    if not (base.scheme and base.netloc):
        return {normalise(request.host_url)}
    public = normalise(f"{base.scheme}://{base.netloc}")
    return {public} if base.scheme == "https" else {public, normalise(request.host_url)}


def refusal(allowed: Iterable[str] = ()) -> str | None:
    """Why this request must be refused as a cross-site post, or None when it may go on."""
    site = (request.headers.get("Sec-Fetch-Site") or "").strip().lower()
    origin = request.headers.get("Origin")
    if site in SAFE_FETCH_SITES:
        return None
    listed = {normalise(o) for o in allowed if o}
    opaque = origin is None or origin.strip().lower() == "null"
    if site:
        # The browser says the post comes from another site: only an allow-listed origin
        # may, never our own (no browser sends that pair honestly).
        if not opaque and normalise(origin or "") in listed:
            return None
        return f"posted from a {site[:20]} page" + ("" if opaque else f" at {_shown(origin)}")
    if not opaque:
        if normalise(origin or "") in own_origins() | listed:
            return None
        return f"posted from {_shown(origin)}"
    if origin is not None:  # "null": a sandboxed frame or a privacy redirect
        return "posted from an opaque origin"
    return None


def _shown(origin: str | None) -> str:
    return normalise(origin or "")[:200]
