"""LAN mode: a server bound beyond loopback answers the names and addresses it is reachable at,
and still refuses every other Host (DNS rebinding).

The LAN is a real one: a network namespace joined to this machine by a veth pair, with known
IPv4, IPv6 and link-local addresses on this machine's side and a client inside the namespace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localembed.config.network import (
    ADDRESS_RECHECK,
    interface_addresses,
    is_loopback,
    local_url,
    machine_names,
    reachable_urls,
    url_host,
)
from localembed.config.settings import ServerConfig
from localembed.server.security import host_allowed, origin_allowed
from tests.fixtures.server import running
from tests.test_serve_cli import start_serve

KEY = "lan-test-key"


@dataclass(frozen=True)
class Lan:
    namespace: str
    ipv4: str  # this machine's side
    ipv6: str
    link_local: str
    interface: str

    def client(self, url: str, host: str | None = None, timeout: float = 20) -> tuple[int, str]:
        """(status, body) of GET url from a process inside the namespace, with the API key."""
        headers = {"Authorization": f"Bearer {KEY}", **({"Host": host} if host else {})}
        script = (
            "import sys, urllib.request, urllib.error\n"
            f"req = urllib.request.Request({url!r}, headers={headers!r})\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=10)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n")
        out = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-c", script],
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr
        status, _, body = out.stdout.partition("\n")
        return int(status), body


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    tag = os.getpid() % 100000
    namespace, here, there = f"le-lan-{tag}", f"le{tag}h", f"le{tag}n"
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)
    ip("netns", "add", namespace)
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", namespace)
        ip("addr", "add", "10.213.0.1/24", "dev", here)
        ip("-6", "addr", "add", "fd13:213::1/64", "dev", here, "nodad")
        ip("-6", "addr", "add", "fe80::213:1/64", "dev", here, "nodad")
        ip("link", "set", here, "up")
        ns = ("netns", "exec", namespace, "ip")
        ip(*ns, "addr", "add", "10.213.0.2/24", "dev", there)
        ip(*ns, "-6", "addr", "add", "fd13:213::2/64", "dev", there, "nodad")
        ip(*ns, "link", "set", there, "up")
        ip(*ns, "link", "set", "lo", "up")
        time.sleep(ADDRESS_RECHECK)  # a server sees a new address within this
        yield Lan(namespace, "10.213.0.1", "fd13:213::1", "fe80::213:1", here)
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


WILDCARD = ServerConfig(host="0.0.0.0", api_key=KEY)


def test_a_wildcard_bind_accepts_every_interface_address_as_host(lan: Lan) -> None:
    addresses = [str(a) for a in interface_addresses()]
    assert {lan.ipv4, lan.ipv6, lan.link_local} <= set(addresses)
    for address in addresses:
        host = f"[{address}]:8642" if ":" in address else f"{address}:8642"
        assert host_allowed(host, WILDCARD), host


def test_a_link_local_host_is_accepted_with_or_without_its_zone(lan: Lan) -> None:
    for host in (f"[{lan.link_local}]:8642", f"[{lan.link_local}%25{lan.interface}]:8642",
                 f"[{lan.link_local}%{lan.interface}]", "[FE80:0:0::213:1]:1"):
        assert host_allowed(host, WILDCARD), host


def test_a_wildcard_bind_accepts_the_machines_hostname_and_fqdn() -> None:
    names = {socket.gethostname(), socket.getfqdn()}
    assert {n.lower() for n in names} <= machine_names()
    for name in names:
        assert host_allowed(f"{name}:8642", WILDCARD) and host_allowed(name.upper(), WILDCARD)


def test_foreign_hosts_are_still_refused(lan: Lan) -> None:
    for host in ("evil.example:8642", "10.213.0.2:8642", "[fd13:213::2]:8642",
                 f"{lan.ipv4}.evil.example", "[fe80::213:2]:8642"):
        assert not host_allowed(host, WILDCARD), host


def test_a_specific_bind_accepts_its_own_address_and_not_the_others(lan: Lan) -> None:
    config = ServerConfig(host=lan.ipv4, api_key=KEY)
    assert host_allowed(f"{lan.ipv4}:8642", config)
    assert not host_allowed(f"[{lan.ipv6}]:8642", config)
    assert not host_allowed(f"{socket.gethostname()}:8642", config)
    assert host_allowed(f"[{lan.ipv6}]:8642", ServerConfig(host=lan.ipv6, api_key=KEY))


def test_reachable_urls_list_the_interface_addresses_of_the_bound_family(lan: Lan) -> None:
    ipv4 = reachable_urls("0.0.0.0", 8642)
    assert ipv4[0] == "http://127.0.0.1:8642" and f"http://{lan.ipv4}:8642" in ipv4
    assert not any("[" in url for url in ipv4)
    ipv6 = reachable_urls("::", 8642)
    assert ipv6[0] == "http://[::1]:8642" and f"http://[{lan.ipv6}]:8642" in ipv6
    assert not any("fe80" in url for url in ipv6)  # a link-local URL needs the client's zone
    assert reachable_urls(lan.ipv4, 8642) == [f"http://{lan.ipv4}:8642"]


def test_a_lan_client_reaches_a_server_bound_to_every_ipv4_interface(lan: Lan,
                                                                    synthetic) -> None:
    with running(ServerConfig(host="0.0.0.0", api_key=KEY), synthetic("bert")) as (url, _):
        port = url.rsplit(":", 1)[1]
        status, body = lan.client(f"http://{lan.ipv4}:{port}/v1/models")
        assert status == 200, body
        assert json.loads(body)["object"] == "list"
        status, body = lan.client(f"http://{lan.ipv4}:{port}/v1/models", host="evil.example")
        assert status == 403 and json.loads(body)["error"]["code"] == "host_not_allowed"


def test_a_lan_client_reaches_a_server_bound_to_every_ipv6_interface(lan: Lan,
                                                                    synthetic) -> None:
    with running(ServerConfig(host="::", api_key=KEY), synthetic("bert")) as (url, _):
        port = url.rsplit(":", 1)[1]
        status, body = lan.client(f"http://[{lan.ipv6}]:{port}/v1/models")
        assert status == 200, body
        status, body = lan.client(f"http://[{lan.ipv6}]:{port}/v1/models",
                                  host=f"{lan.ipv4}.evil.example")
        assert status == 403


def test_the_playground_opened_at_a_lan_address_may_call_the_api(lan: Lan, app_factory) -> None:
    client = app_factory(WILDCARD)
    origin = f"http://{lan.ipv4}:8642"
    response = client.post("/v1/embeddings", json={"input": "hi"},
                           headers={"Host": f"{lan.ipv4}:8642", "Origin": origin,
                                    "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    foreign = client.post("/v1/embeddings", json={"input": "hi"},
                          headers={"Host": f"{lan.ipv4}:8642", "Origin": "http://evil.example",
                                   "Authorization": f"Bearer {KEY}"})
    assert foreign.status_code == 403


def test_any_host_allowed_does_not_make_a_rebinding_page_the_servers_own(app_factory) -> None:
    client = app_factory(ServerConfig(host="0.0.0.0", api_key=KEY, allowed_hosts=("*",)))
    response = client.post("/v1/embeddings", json={"input": "hi"},
                           headers={"Host": "evil.example:8642",
                                    "Origin": "http://evil.example:8642",
                                    "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "origin_not_allowed"


def test_serve_prints_the_lan_urls_it_is_reachable_at(lan: Lan, synthetic,
                                                     app_home: Path) -> None:
    proc = start_serve("--host", "0.0.0.0", "--port", "0", "--api-key", KEY,
                       "-m", str(synthetic("bert")), home=app_home)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        port = url.rsplit(":", 1)[1]
        status, _ = lan.client(f"http://{lan.ipv4}:{port}/v1/models")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    reachable = next(line for line in err.splitlines() if line.startswith("Reachable at:"))
    assert reachable.split()[2] == f"http://127.0.0.1:{port}"
    assert f"http://{lan.ipv4}:{port}" in reachable.split()
    assert status == 200


LOOPBACK = ("localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.0.0.2", "127.1.2.3", "::1",
            "[::1]", "0:0:0:0:0:0:0:1", "::1%lo")
NOT_LOOPBACK = ("0.0.0.0", "::", "", "10.213.0.1", "fe80::1", "localhost.evil.example",
                "evil-localhost", "128.0.0.1", "::2")


@pytest.mark.parametrize("host", LOOPBACK)
def test_a_loopback_name_is_one_rule_for_the_bind_and_the_host_check(host: str) -> None:
    assert is_loopback(host)
    assert ServerConfig(host=host.strip("[]")).is_local  # no API key is generated for it
    port = f"[{host.strip('[]')}]:8642" if ":" in host else f"{host}:8642"
    assert host_allowed(port, WILDCARD), port
    assert origin_allowed(f"http://{url_host(host.strip('[]').split('%')[0])}:5173",
                          ServerConfig())


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_every_other_name_is_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    assert not ServerConfig(host=host).is_local
    assert not origin_allowed(f"http://{url_host(host) or 'x'}:5173", ServerConfig())


def test_an_ipv6_host_is_bracketed_in_every_url() -> None:
    from localembed.server import server_url

    assert url_host("::1") == "[::1]" and url_host("127.0.0.1") == "127.0.0.1"
    assert url_host("example.org") == "example.org"
    assert local_url("::", 8642) == "http://[::1]:8642"
    assert local_url("0.0.0.0", 8642) == "http://127.0.0.1:8642"
    assert local_url("fd13:213::1", 1) == "http://[fd13:213::1]:1"

    class Bound:
        effective_host, effective_port = "fd13:213::1", 8642

    assert server_url(Bound()) == "http://[fd13:213::1]:8642"
    Bound.effective_host = "10.213.0.1"
    assert server_url(Bound()) == "http://10.213.0.1:8642"
