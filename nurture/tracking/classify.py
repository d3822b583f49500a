"""Human or machine: every open and click gets a verdict and a reason.

`by_request` needs only what the request carried (method, user agent, address, SendGrid's
flag); `too_soon` and `burst_indices` need the send's history and run in the batch writer.
Machine events are stored, marked `is_bot` with `bot_reason`; nothing is thrown away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from nurture.tracking import agents

HONEYPOT = "honeypot link (hidden from people)"
HEAD = "HEAD request (link checkers, not browsers)"
SG_MACHINE_OPEN = "SendGrid machine open (sg_machine_open)"
APPLE_PROXY = "Apple Mail privacy proxy"
NO_USER_AGENT = "no user agent"
GOOGLE_PROXY = "Google image proxy (a real, proxied open)"
IMPLIED_BY_CLICK = "implied by a human click"
BURST = "several links of one email clicked within a second"


@dataclass(frozen=True)
class Verdict:
    is_bot: bool
    reason: str | None = None

    @property
    def bot_reason(self) -> str | None:
        return self.reason if self.is_bot else None


HUMAN = Verdict(False)


@lru_cache(maxsize=4096)  # a pure function of its arguments; hot paths ask it per hit
def by_request(kind: str, *, method: str = "GET", user_agent: str = "", ip: str | None = None,
               sg_machine_open: bool = False, honeypot: bool = False) -> Verdict:
    """`kind` is "open" or "click"."""
    user_agent = user_agent or ""
    if honeypot:
        return Verdict(True, HONEYPOT)
    if method.upper() == "HEAD":
        return Verdict(True, HEAD)
    if sg_machine_open:
        return Verdict(True, SG_MACHINE_OPEN)
    if agents.is_google_image_proxy(user_agent):
        return Verdict(False, GOOGLE_PROXY)
    if kind == "open" and agents.is_apple_proxy(user_agent, ip):
        return Verdict(True, APPLE_PROXY)
    vendor = agents.scanner(user_agent, ip)
    if vendor:
        return Verdict(True, f"link scanner: {vendor}")
    if not user_agent.strip():
        return Verdict(True, NO_USER_AGENT)
    return HUMAN


def too_soon(at: datetime, reference: datetime | None, seconds: float) -> Verdict | None:
    """Machine when it happened within `seconds` of the send's delivery (or sending)."""
    if reference is None or seconds <= 0:
        return None
    if timedelta(0) <= at - reference < timedelta(seconds=seconds):
        return Verdict(True, f"within {seconds:g}s of delivery")
    return None


def burst_indices(clicks: list[tuple[datetime, int]], window: float = 1.0) -> set[int]:
    """Positions (in `clicks`, one send's (time, link index) pairs) that are part of a burst:
    a different link of the same email clicked less than `window` seconds apart."""
    order = sorted(range(len(clicks)), key=lambda i: clicks[i][0])
    flagged: set[int] = set()
    for pos, i in enumerate(order):
        for j in order[pos + 1:]:
            if (clicks[j][0] - clicks[i][0]).total_seconds() >= window:
                break
            if clicks[j][1] != clicks[i][1]:
                flagged.update((i, j))
    return flagged
