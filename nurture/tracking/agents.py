"""Who fetches tracking pixels and links besides people: the lists, in one place.

These are small seed lists, kept deliberately short and documented so anyone can check and
extend them; they are not a vendor feed. Sources to re-check them against:

- Apple Mail Privacy Protection: Apple's mail proxy prefetches every image of every email from
  Apple-owned address space (17.0.0.0/8 is Apple's own allocation) with a bare, generic user
  agent ("Mozilla/5.0" with nothing after it). SendGrid flags these opens `sg_machine_open`.
- Microsoft Safe Links / Exchange Online Protection: the EOP ranges Microsoft publishes for
  Exchange Online (40.92.0.0/15, 40.107.0.0/16, 52.100.0.0/14, 104.47.0.0/17).
- Mimecast: the gateway ranges Mimecast publishes for its US and EU grids.
- Proofpoint: Proofpoint's published hosted ranges (pphosted) and its URL Defense rewriter.
- Barracuda: the Barracuda Email Security Service ranges.
- Google's image proxy ("GoogleImageProxy" in the user agent) fetches images when a Gmail user
  actually opens the message: a real, proxied open, so it is *not* on any list here.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

APPLE_PROXY_NETWORKS = ("17.0.0.0/8",)
# The privacy proxy's user agent: exactly this, no platform or engine after it.
APPLE_PROXY_USER_AGENTS = ("Mozilla/5.0",)

# vendor -> networks
SCANNER_NETWORKS: dict[str, tuple[str, ...]] = {
    "Microsoft Safe Links": ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14",
                             "104.47.0.0/17"),
    "Mimecast": ("205.139.110.0/24", "207.211.30.0/24", "216.205.24.0/24", "91.220.42.0/24",
                 "195.130.217.0/24"),
    "Proofpoint": ("148.163.128.0/19", "67.231.144.0/20", "208.84.65.0/24", "208.86.202.0/24"),
    "Barracuda": ("64.235.144.0/20", "209.222.80.0/21"),
}

# vendor or kind -> case-insensitive user-agent fragments
SCANNER_USER_AGENTS: dict[str, tuple[str, ...]] = {
    "Microsoft Safe Links": ("safelinks", "bingpreview", "ms-office-scanner"),
    "Mimecast": ("mimecast",),
    "Proofpoint": ("proofpoint", "urldefense"),
    "Barracuda": ("barracuda",),
    "automated client": ("python-requests", "python-urllib", "curl/", "wget/", "go-http-client",
                         "okhttp", "java/", "libwww-perl", "headlesschrome", "phantomjs",
                         "bot", "spider", "crawler", "scanner"),
}

GOOGLE_IMAGE_PROXY = "googleimageproxy"


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return None


def in_networks(ip: str | None, cidrs: tuple[str, ...]) -> bool:
    address = _address(ip)
    return address is not None and any(address in net for net in _networks(cidrs))


def is_apple_proxy(user_agent: str, ip: str | None) -> bool:
    return in_networks(ip, APPLE_PROXY_NETWORKS) or user_agent.strip() in APPLE_PROXY_USER_AGENTS


def is_google_image_proxy(user_agent: str) -> bool:
    return GOOGLE_IMAGE_PROXY in user_agent.lower()


def scanner(user_agent: str, ip: str | None) -> str | None:
    """The vendor (or kind) of link scanner this request looks like, else None."""
    for vendor, cidrs in SCANNER_NETWORKS.items():
        if in_networks(ip, cidrs):
            return vendor
    lowered = user_agent.lower()
    for vendor, fragments in SCANNER_USER_AGENTS.items():
        if any(_word(fragment).search(lowered) for fragment in fragments):
            return vendor
    return None


@cache
def _word(fragment: str) -> re.Pattern[str]:
    # "bot" must not match "both"; fragments ending in / or - are prefixes already.
    if fragment[-1].isalnum():
        return re.compile(re.escape(fragment) + r"(?![a-z])")
    return re.compile(re.escape(fragment))
