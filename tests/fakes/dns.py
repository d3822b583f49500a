"""A fake DNS for tests (there is none here): made-up names answer what the test says."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any


def fake_getaddrinfo(names: dict[str, list[str]], real: Callable[..., Any]) -> Callable[..., Any]:
    """`socket.getaddrinfo` that answers `names` (host → addresses) and asks the real one
    (no DNS here: only literals and /etc/hosts) for the rest."""

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> list[Any]:
        key = host.decode() if isinstance(host, bytes) else host
        if key in names:
            out = []
            for address in names[key]:
                fam = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr = (address, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (
                    address, int(port or 0))
                out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        if key and key.endswith((".example", ".example.com", ".example.org")):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, family, type, proto, flags)

    return getaddrinfo
