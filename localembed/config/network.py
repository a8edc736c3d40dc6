"""The names and addresses a server bound to a host is reachable at.

Two rules need the same answer: which ``Host`` headers name this server (the DNS-rebinding
guard refuses every other name) and which URLs ``serve`` prints for other machines. A server
bound to a wildcard is reachable at every address of every interface and at the machine's own
names; one bound to an address only at that address. Interfaces come and go (Wi-Fi, DHCP,
VPNs), so addresses are read again after a short while rather than once at start.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import threading
import time

WILDCARDS = ("0.0.0.0", "::", "")
# How long the interface addresses read for the Host check are trusted before they are read
# again, so that a request costs no system call; an address not among them is looked for
# again once the list is ADDRESS_RECHECK old, so a new DHCP lease is accepted within a second
# (and a flood of foreign addresses costs at most one read a second).
ADDRESS_TTL = 10.0
ADDRESS_RECHECK = 1.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_wildcard(host: str) -> bool:
    return host in WILDCARDS


@functools.lru_cache(maxsize=1024)  # every request's Host header: parsing it cost 15 us
def is_loopback(host: str) -> bool:
    """A name or address only this machine reaches: ``localhost``, 127.0.0.0/8 or ``::1``, in
    any spelling (``LOCALHOST``, ``0:0::1``, ``[::1]``). The one rule for a loopback-only bind
    and for a local Host header or Origin."""
    name = canonical(host.strip().removeprefix("[").removesuffix("]"))
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as a URL spells it: an IPv6 address in brackets (``[::1]``), anything else
    as it is."""
    return f"[{host}]" if ":" in host else host


def canonical(name: str) -> str:
    """A host name or address in the one spelling comparisons use: lower case, no trailing dot,
    addresses compressed and without an IPv6 zone (``FE80:0::1%25eth0`` -> ``fe80::1``): the
    zone names the client's interface, not which machine it reaches."""
    name = name.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        return name


def interface_addresses() -> list[Address]:
    """Every address of every interface of this machine, IPv4 and IPv6, loopback included."""
    found: list[Address] = []
    import ifaddr  # ctypes and the interface table: only when the addresses are asked for

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            try:
                found.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError:
                continue
    return found


@functools.cache
def machine_names() -> frozenset[str]:
    """This machine's host name and fully qualified name (read once: the FQDN may cost a DNS
    lookup, and a machine does not rename itself under a running server)."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn())
    return frozenset(canonical(n) for n in names if n)


_cache_lock = threading.Lock()
_cached: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def _own_addresses(max_age: float) -> frozenset[str]:
    global _cached
    with _cache_lock:
        read_at, addresses = _cached
        if time.monotonic() - read_at > max_age:
            addresses = frozenset(str(a) for a in interface_addresses())
            _cached = (time.monotonic(), addresses)
        return addresses


def names_this_server(name: str, bind_host: str) -> bool:
    """Whether a Host header's host part names a server bound to ``bind_host``.

    An address of this machine cannot be a rebinding attacker's name, so every one of them is
    accepted for a wildcard bind, along with the machine's own names."""
    name = canonical(name)
    if not is_wildcard(bind_host):
        return name == canonical(bind_host)
    if name in machine_names() or name in _own_addresses(ADDRESS_TTL):
        return True
    return _is_address(name) and name in _own_addresses(ADDRESS_RECHECK)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def reachable_addresses(bind_host: str) -> list[str]:
    """The addresses other machines can use for a server bound to ``bind_host``, loopback first.

    A wildcard binds one family (waitress binds ``::`` IPv6-only). IPv6 link-local addresses
    are left out: a URL for one needs the zone of the client's interface, which only the
    client knows."""
    if not is_wildcard(bind_host):
        return [bind_host]
    version = 6 if bind_host == "::" else 4
    addresses = {a for a in interface_addresses()
                 if a.version == version and not (a.version == 6 and a.is_link_local)}
    addresses.add(ipaddress.ip_address("::1" if version == 6 else "127.0.0.1"))
    ordered = sorted(addresses, key=lambda a: (not a.is_loopback, a.packed))
    return [str(a) for a in ordered]


def reachable_urls(host: str, port: int) -> list[str]:
    """The URLs other machines can use for a server bound to ``host`` (wildcards expanded to
    this machine's interface addresses), loopback first."""
    return [local_url(a, port) for a in reachable_addresses(host)]


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``:``port``."""
    if host in ("0.0.0.0", ""):  # bound to every IPv4 interface: loopback reaches it
        host = "127.0.0.1"
    elif host == "::":  # waitress binds "::" IPv6-only, so 127.0.0.1 would not reach it
        host = "::1"
    return f"http://{url_host(host)}:{port}"
