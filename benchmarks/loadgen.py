"""A small-footprint HTTP/1.1 load generator for embeddings servers (used by vs_llama_server.py).

Every request's bytes are built once, before timing; the timed pass only writes them and reads
each response's status line, headers and Content-Length body over keep-alive connections
(asyncio streams, uvloop when installed). No JSON is parsed while timing: ``verify`` does that in
a separate, untimed pass. ``run`` reports the generator's own CPU time (``time.process_time``
of this process) beside the wall time, so its cost can be shown to be small and equal for both
servers.

    python benchmarks/loadgen.py --url http://127.0.0.1:8642 --clients 32 --requests 256
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

try:  # optional, never a dependency
    import uvloop  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    uvloop = None

PATH = "/v1/embeddings"


def encode_request(host: str, port: int, inputs: list[str] | str,
                   encoding_format: str = "base64", path: str = PATH) -> bytes:
    """The full bytes of one ``POST /v1/embeddings`` request."""
    body = json.dumps({"input": inputs, "encoding_format": encoding_format},
                      ensure_ascii=False).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode("latin-1")
    return head + body


@dataclass
class Result:
    """One timed pass."""

    requests: int
    wall_s: float
    cpu_s: float  # this process's CPU seconds (user + system) during the pass
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection open) with minimal parsing."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        body = await reader.readexactly(int(lower[at + 17:end]))
    elif b"chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:  # body runs to connection close
        body = await reader.read()
        return status, body, False
    return status, body, b"connection: close" not in lower


class Connection:
    """One keep-alive connection that reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20)
        assert self.reader is not None
        self.writer.write(data)
        status, body, keep = await _read_response(self.reader)
        if not keep:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _run(host: str, port: int, requests: list[bytes], clients: int,
               keep_bodies: bool) -> tuple[Result, list[bytes]]:
    latencies = [0.0] * len(requests)
    bodies: list[bytes] = [b""] * len(requests) if keep_bodies else []
    errors: list[str] = []
    next_index = iter(range(len(requests)))
    connections = [Connection(host, port) for _ in range(min(clients, len(requests)))]
    for c in connections:  # connect before the clock starts
        c.reader, c.writer = await asyncio.open_connection(host, port, limit=1 << 20)

    async def client(conn: Connection) -> None:
        clock = time.perf_counter
        for i in next_index:
            start = clock()
            status, body = await conn.request(requests[i])
            latencies[i] = (clock() - start) * 1000
            if status != 200:
                errors.append(f"HTTP {status}: {body[:300]!r}")
            if keep_bodies:
                bodies[i] = body

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for c in connections:
        c.close()
    result = Result(len(requests), wall, cpu, latencies, len(errors),
                    errors[0] if errors else "")
    return result, bodies


def _loop_run(coro):  # type: ignore[no-untyped-def]
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def run(url: str, requests: list[bytes], clients: int = 1) -> Result:
    """Send ``requests`` (each an ``encode_request`` result) from ``clients`` concurrent
    keep-alive connections, each taking the next unsent request; time the whole pass."""
    parts = urlsplit(url)
    result, _ = _loop_run(_run(parts.hostname or "127.0.0.1", parts.port or 80, requests,
                               clients, keep_bodies=False))
    return result


def fetch(url: str, requests: list[bytes], clients: int = 1) -> list[dict]:
    """Untimed: send ``requests`` and return the parsed JSON bodies (raises on an error)."""
    parts = urlsplit(url)
    result, bodies = _loop_run(_run(parts.hostname or "127.0.0.1", parts.port or 80, requests,
                                    clients, keep_bodies=True))
    if result.errors:
        raise RuntimeError(result.first_error)
    return [json.loads(b) for b in bodies]


def vectors(response: dict) -> list[list[float]]:
    """The embeddings of an OpenAI-style response, decoding base64 (little-endian float32)."""
    import numpy as np

    out = []
    for item in sorted(response["data"], key=lambda d: d["index"]):
        emb = item["embedding"]
        if isinstance(emb, str):
            emb = np.frombuffer(base64.b64decode(emb), dtype="<f4").tolist()
        out.append(emb)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="Texts per request.")
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--format", default="base64", choices=["base64", "float"])
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    text = " ".join(["word"] * args.words)
    one = encode_request(host, port, [text] * args.batch if args.batch > 1 else text,
                         args.format)
    run(args.url, [one], 1)  # warm-up
    r = run(args.url, [one] * args.requests, args.clients)
    print(f"{r.requests} requests in {r.wall_s:.2f}s: {r.rps:.1f} req/s, p50 {r.p50_ms:.1f} ms, "
          f"p99 {r.p99_ms:.1f} ms, errors {r.errors}, load generator CPU "
          f"{r.cpu_s / r.requests * 1e6:.0f} us/request ({r.cpu_s / r.wall_s:.0%} of a core)")


if __name__ == "__main__":
    main()
