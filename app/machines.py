"""Is this request a machine? Mail security scanners and privacy proxies fetch every link in an
email, so a fetch of an emailed link is engagement only when a person made it.

The tracking package registers the classifier (`app.extensions["machine_reason"]`: request →
reason or None); without it only HEAD requests, which browsers never make for a link, count.
"""

from __future__ import annotations

from flask import Request, current_app, request


def machine_reason(req: Request | None = None) -> str | None:
    req = req or request
    classify = current_app.extensions.get("machine_reason")
    if classify is not None:
        return classify(req)
    return "HEAD request (link checkers, not browsers)" if req.method == "HEAD" else None
