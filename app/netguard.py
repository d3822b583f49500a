"""Outgoing HTTP to URLs users typed (the CRM webhook, webhooks out): never to loopback,
link-local, private, shared, multicast, reserved or unspecified addresses, IPv4 or IPv6
(IPv4-mapped, NAT64, 6to4 and Teredo forms unwrapped).

- `check_url(url)`: at save time. The URL must be http(s) with a host and no credentials; the
  host is resolved and every address it has must be public. Raises `BlockedURL` with a message
  to show beside the field.
- `post(url, body, headers, timeout)`: at connect time. Resolves and checks again (the name may
  point elsewhere now), then connects to the checked address itself (the Host header and TLS
  name stay the URL's), follows no redirect and reads no more than a few bytes of the answer.
  The whole exchange takes at most `timeout` seconds: a receiver answering a byte at a time
  (each within the read timeout) is cut off then. Returns a `Reply` (status only: a response body is never shown to anyone); raises
  `BlockedURL`, or `OutboundError` when the target cannot be reached.

`OUTBOUND_ALLOWED_NETWORKS` (comma-separated CIDRs, default empty) lets an operator allow ranges,
e.g. a CRM inside the private network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from flask import current_app, has_app_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_REPLY_BYTES = 1024  # read (and drop) at most this much of an answer


class BlockedURL(ValueError):
    """Kindling will not send to this URL; the message says why, in words for the admin."""


class OutboundError(OSError):
    """The target could not be reached or did not answer in time (`timed_out`)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Reply:
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_networks(value: str | Iterable[str] | None) -> list[IPNetwork]:
    """`"10.0.0.0/8, fd00::/8"` → networks. Raises ValueError naming a bad entry."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[IPNetwork] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network (write it like 10.0.0.0/8)") from None
    return networks


def allowed_networks() -> list[IPNetwork]:
    if not has_app_context():
        return []
    return parse_networks(current_app.config.get("OUTBOUND_ALLOWED_NETWORKS"))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return _is_public(inner)
        if ip.is_site_local:  # fec0::/10, deprecated but still routed inside some networks
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback
                                 or ip.is_link_local or ip.is_private or ip.is_unspecified)


def check_address(ip: IPAddress, allowed: Iterable[IPNetwork] | None = None) -> None:
    """Raise `BlockedURL` unless `ip` is public or inside an allowed network."""
    allowed = allowed_networks() if allowed is None else list(allowed)
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
        candidates.append(inner)
    if any(c.version == n.version and c in n for c in candidates for n in allowed):
        return
    if not _is_public(ip):
        raise BlockedURL(f"{ip} is not a public address: sending there is not allowed "
                         "(an operator can allow a range with OUTBOUND_ALLOWED_NETWORKS).")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (no brackets)
    port: int
    path: str  # path and query
    addresses: tuple[IPAddress, ...]  # every address the host has, all checked

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        raise BlockedURL("The port must be a number from 1 to 65535.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURL("Use an http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise BlockedURL("Leave credentials out of the URL (use the secret instead).")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BlockedURL("The URL has no host name.")
    port = port or (443 if scheme == "https" else 80)
    if not 0 < port < 65536:
        raise BlockedURL("The port must be a number from 1 to 65535.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port, path


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address of `host` (a literal is itself). Raises `BlockedURL` if it has none."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise BlockedURL(f"The host {host} could not be found.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise BlockedURL(f"The host {host} could not be found.")
    return tuple(addresses)


def vet(url: str) -> Target:
    """Parse, resolve and check `url`; every address of its host must pass."""
    scheme, host, port, path = _split(url)
    addresses = resolve(host, port)
    allowed = allowed_networks()
    for ip in addresses:
        check_address(ip, allowed)
    return Target(scheme, host, port, path, addresses)


def check_url(url: str) -> None:
    """Save-time check of a user-given URL. Raises `BlockedURL` with a clear message."""
    vet(url)


class _Cuttable:
    """A pool whose connections another thread can cut (the deadline's timer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made: list[Any] = []
        self.cut_off = False

    def _new_conn(self) -> Any:
        conn = super()._new_conn()  # type: ignore[misc]
        self.made.append(conn)
        return conn

    def cut(self) -> None:
        self.cut_off = True
        for conn in self.made:
            if conn.sock is not None:
                try:  # the plain socket's shutdown: the reading thread's recv returns at once
                    socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _HTTPPool(_Cuttable, urllib3.HTTPConnectionPool):
    pass


class _HTTPSPool(_Cuttable, urllib3.HTTPSConnectionPool):
    pass


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Reply:
    """POST `body` to `url`, connecting only to an address checked just now (see module doc)."""
    target = vet(url)
    ip = str(target.addresses[0])
    pool: _HTTPPool | _HTTPSPool
    if target.scheme == "https":
        tls_name = None if _is_literal(target.host) else target.host
        pool = _HTTPSPool(
            ip, target.port, server_hostname=tls_name or ip,
            assert_hostname=tls_name or ip, cert_reqs="CERT_REQUIRED", maxsize=1, retries=False)
    else:
        pool = _HTTPPool(ip, target.port, maxsize=1, retries=False)
    sent = {k: v for k, v in headers.items() if k.lower() != "host"}
    sent["Host"] = target.host_header
    deadline = threading.Timer(timeout, pool.cut)
    deadline.daemon = True
    deadline.start()
    try:
        response = pool.urlopen("POST", target.path, body=body, headers=sent, redirect=False,
                                retries=False, preload_content=False,
                                timeout=urllib3.Timeout(connect=timeout, read=timeout))
        try:
            response.read(MAX_REPLY_BYTES)  # drained a little, never kept
        except urllib3.exceptions.HTTPError:
            pass
        status = response.status
        response.release_conn()
    except urllib3.exceptions.NewConnectionError as exc:
        reason = "connection refused" if isinstance(
            exc.__cause__ or exc.__context__, ConnectionRefusedError) else "could not connect"
        raise OutboundError(f"{target.host}:{target.port}: {reason}") from None
    except (TimeoutError, urllib3.exceptions.TimeoutError):
        raise OutboundError(f"{target.host}:{target.port}: no answer within {timeout:g} s",
                            timed_out=True) from None
    except urllib3.exceptions.SSLError:
        raise OutboundError(f"{target.host}:{target.port}: TLS handshake failed") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if pool.cut_off:
            raise OutboundError(f"{target.host}:{target.port}: no answer within {timeout:g} s",
                                timed_out=True) from None
        raise OutboundError(f"{target.host}:{target.port}: {type(exc).__name__}") from None
    finally:
        deadline.cancel()
        pool.close()
    return Reply(status)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
