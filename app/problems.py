"""RFC 9457 problem details: the JSON body every machine-facing refusal carries.

`problem(status, title, detail)` answers `application/problem+json` with `type`, `title`,
`status` and `detail` (and any extra members given). `type` names the kind of problem as a URN
(`urn:kindling:problem:<slug>`), stable for clients to branch on; the title says it in words.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

MEDIA_TYPE = "application/problem+json"


def problem(status: int, slug: str, title: str, detail: str = "", **extra: Any) -> Response:
    body: dict[str, Any] = {"type": f"urn:kindling:problem:{slug}", "title": title,
                            "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE,
                    headers={"Cache-Control": "no-store"})
