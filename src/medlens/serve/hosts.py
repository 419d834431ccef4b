"""The trusted-host check: which ``Host`` headers the service answers.

Without tokens the service has no authentication and binds to a loopback address only. A web
page on another site can still reach it through the user's browser by DNS rebinding: its own
name is made to resolve to 127.0.0.1, and the browser then sends the attacker's name in the
``Host`` header. So in open (no-token) mode every request must name a loopback host
(``localhost``, 127.0.0.0/8, ``::1``) or one of the hosts given with ``allowed_hosts``
(``--allowed-hosts``, e.g. the name a local reverse proxy forwards); anything else is
answered 400 before it reaches a route. With tokens the check applies only when
``allowed_hosts`` is given.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

from medlens.errors import ConfigError
from medlens.serve.access_log import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost"})
REFUSED = "the Host header names a host this service does not answer to"
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """The allowed host names or addresses, lower-cased, as ``host_of`` gives them.

    Raises:
        ConfigError: an entry that is not a host name or an IP address (a port, a scheme,
            a path or a wildcard).
    """
    allowed = set()
    for entry in hosts:
        name = str(entry).strip().lower().rstrip(".")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        try:
            allowed.add(str(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(name) or len(name) > 253:
            raise ConfigError(
                "--allowed-hosts",
                f"{entry!r} is not a host name or an IP address (give names without port, "
                "scheme or wildcard)",
            )
        allowed.add(name)
    return frozenset(allowed)


def host_of(header: str) -> str:
    """The host of a ``Host`` header, without the port, lower-cased; ``""`` when malformed."""
    header = header.strip().lower()
    if header.startswith("["):  # [v6]:port
        end = header.find("]")
        rest = header[end + 1 :] if end >= 0 else ""
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return ""
        try:
            return str(ipaddress.ip_address(header[1:end]))
        except ValueError:
            return ""
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return ""
    return name.rstrip(".")


class TrustedHostMiddleware:
    """ASGI middleware: a 400 for a request whose ``Host`` is neither loopback nor allowed.

    Args:
        app: the wrapped application.
        allowed: extra host names or addresses (see ``normalise_hosts``).
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.allowed = allowed

    def accepts(self, header: str) -> bool:
        host = host_of(header)
        return bool(host) and (is_loopback(host) or host in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the service has no websocket routes
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"host", b"").decode("latin-1")
        if self.accepts(header):
            await self.app(scope, receive, send)
            return
        request_id = str(scope.get("state", {}).get("request_id", ""))
        body = json.dumps({"detail": REFUSED, "request_id": request_id}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
