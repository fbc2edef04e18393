"""Which Host names the server answers under, and which pages may send it requests that change something.

DNS rebinding: a page of another site re-points its own name at 127.0.0.1 and then talks to the app from
the user's own browser, as the same origin. The browser still sends that site's name as `Host`, so a server
that answers only under its own names (loopback, the address it is bound to, --allowed-hosts, the share
link) is out of its reach. Ports are not compared: an SSH tunnel (`ssh -L 8080:localhost:7860`) makes the
browser send `localhost:8080`, and an attacker cannot make a browser send a loopback name anyway.

Cross-site requests (a form or fetch on another site, with the user's cookie): a request that changes
something (any method but GET/HEAD/OPTIONS, and websockets) whose Origin, or Referer when there is no
Origin, names another site is refused. A request with neither is a script or API client, not a browser
page of another site, and goes through.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PATHS_THAT_CHANGE_STATE = frozenset({"/logout"})  # a GET that ends the session


def split_host(value: str) -> tuple[str, int | None]:
    """'Name:8080' -> ('name', 8080); '[::1]:7860' -> ('::1', 7860); a bad port gives port -1."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[1:end], value[end + 1:]) if end > 0 else (value, "")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
        rest = ":" + port
    else:
        name, rest = value, ""  # a bare IPv6 address or a name without a port
    name = name.rstrip(".")  # "localhost." is "localhost"
    if not rest:
        return name, None
    port = rest[1:]
    return name, int(port) if port.isdigit() and len(port) <= 5 else -1


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostRule:
    """One --allowed-hosts entry: 'name', 'name:port', or '*.example.org' (any subdomain)."""
    name: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> "HostRule":
        name, port = split_host(text)
        return cls(name, port)

    def matches(self, name: str, port: int | None) -> bool:
        if self.port is not None and port is not None and port != self.port:
            return False
        if self.name.startswith("*."):
            return name.endswith(self.name[1:]) and len(name) > len(self.name) - 1
        return name == self.name


def parse_allowed_hosts(text: str | None) -> tuple[HostRule, ...]:
    """--allowed-hosts 'a,b:8443,*.example.org'. Raises ValueError naming the bad entry."""
    rules = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        if "/" in entry or "@" in entry or entry == "*" or " " in entry:
            raise ValueError(f"{entry!r} is not a host name (write names like gpu.example.org or "
                             "gpu.example.org:8443, without http:// or a path; '*' alone is not allowed)")
        rule = HostRule.parse(entry)
        if not rule.name or rule.port == -1 or "*" in rule.name[2:] or ("*" in rule.name and
                                                                         not rule.name.startswith("*.")):
            raise ValueError(f"{entry!r} is not a host name or name:port")
        rules.append(rule)
    return tuple(rules)


def machine_names() -> frozenset[str]:
    """This machine's own names, which LAN users may type when the server listens on every address."""
    names = set()
    for get in (socket.gethostname, socket.getfqdn):
        try:
            names.add(get().lower().rstrip("."))
        except OSError:
            pass
    return frozenset(n for n in names if n)


@dataclass
class HostPolicy:
    bound: str = "127.0.0.1"  # the address the server is bound to
    rules: tuple[HostRule, ...] = ()  # --allowed-hosts
    share_host: str | None = None  # the share link's host, once the link exists
    _own_names: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        bound = split_host(self.bound)[0] if self.bound not in WILDCARD_BINDS else ""
        self.bound = bound
        if not bound:
            self._own_names = machine_names()

    def allows_host(self, header: str | None) -> bool:
        """Whether a request with this Host header is one for this server."""
        if not header:
            return False
        name, port = split_host(header)
        if not name or port == -1:
            return False
        if is_loopback_name(name) or name == self.bound:
            return True
        if not self.bound and (is_ip(name) or name in self._own_names):
            # Listening on every address: any of the machine's IP addresses (a browser sends an IP address
            # as Host only for a page at that address, so no other site can use one) and its own names.
            return True
        if self.share_host and name == self.share_host:
            return True
        return any(rule.matches(name, port) for rule in self.rules)

    def same_site(self, source: str, host_header: str) -> bool:
        """Whether `source` (an Origin, or a Referer URL) is a page of this server, as the browser reached it
        (the Host header) or under a name the owner gave (--allowed-hosts, the share link: a proxy may have
        changed the Host on the way)."""
        parts = urlsplit(source.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            return False  # "null" (a sandboxed frame, a file:// page) and anything odd
        name, port = split_host(parts.netloc)
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        host_name, host_port = split_host(host_header or "")
        if name == host_name and (host_port is None or host_port == port):
            return True
        if self.share_host and name == self.share_host:
            return True
        return any(rule.matches(name, port) for rule in self.rules)


def changes_state(method: str, path: str) -> bool:
    return method.upper() not in SAFE_METHODS or path.rstrip("/") in PATHS_THAT_CHANGE_STATE
