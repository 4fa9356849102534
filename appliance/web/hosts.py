"""The Host check: the page answers only to the box's own names, so DNS rebinding cannot reach the API.

A rebinding attack points the attacker's name (evil.example) at the box's address after the browser
loaded the attacker's page; the browser then sends `Host: evil.example` (and a matching Origin), which
the cross-site check alone cannot tell from the box's own page. Allowed: any IP address literal (a page
loaded from an IP cannot be rebound), localhost, the box's host name, its `.local` (mDNS) name and fully
qualified name, the configured web.host, and the names listed in `[web] allowed_hosts`.
"""

from __future__ import annotations

import ipaddress
import socket

from appliance.errors import ApplianceError

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class MisdirectedError(ApplianceError):
    """A request for a host name this box does not answer to (HTTP 421 Misdirected Request)."""

    status = 421


def host_name(host_header: str) -> str:
    """The name part of a Host header, lower case, without port, brackets or a trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def own_names() -> set[str]:
    """The names this box goes by: host name, its .local name, its fully qualified name."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        name = name.strip().lower().rstrip(".")
        if name:
            names.add(name)
            names.add(name.split(".", 1)[0] + ".local")
    return names


class HostCheck:
    """Decides per request; the box's names are read once (and again when a name is not found)."""

    def __init__(self, allowed: tuple[str, ...] | list[str] = (), bind_host: str = "") -> None:
        self.extra = {host_name(h) for h in allowed if h}
        bind = host_name(bind_host) if bind_host else ""
        if bind and not is_ip(bind):
            self.extra.add(bind)
        self.names = own_names() | self.extra

    def allowed(self, host_header: str | None) -> bool:
        if not host_header:  # HTTP/1.0 without Host: a browser always sends one
            return True
        name = host_name(host_header)
        if is_ip(name) or name in LOCAL_NAMES or name.endswith(".localhost") or name in self.names:
            return True
        self.names = own_names() | self.extra  # the box may have been renamed since start-up
        return name in self.names

    def check(self, host_header: str | None) -> None:
        """MisdirectedError (421) naming the setting that lets the name in."""
        if self.allowed(host_header):
            return
        name = host_name(host_header or "")
        raise MisdirectedError(
            f"this appliance does not answer to the host name {name!r} (a guard against DNS rebinding: "
            "another site's page could otherwise reach the API through its own name)",
            f"open the page by the box's own name or IP address, or add the name to the config: "
            f'[web] allowed_hosts = ["{name}"]')
