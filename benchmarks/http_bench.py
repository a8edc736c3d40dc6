"""HTTP overhead and latency: the server against the in-process engine, in the same run.

    python benchmarks/http_bench.py [--texts 256] [--requests 200] [--dtype f16]

1. Throughput: the same texts in batches of 32, through ``POST /v1/embeddings`` (a real
   ``localembed serve`` process, one keep-alive client) and through ``Engine.embed`` in this
   process; the ratio is the share of engine speed the HTTP layer keeps (goal >= 0.9).
2. Latency: one-text requests from 1, 8 and 32 concurrent clients: p50/p99 and requests/s.

The engine and the server never run at the same time, and the passes alternate (best of
``--repeats``), since the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import make_texts, starter_model  # noqa: E402

from localembed.engine import Engine  # noqa: E402


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)

    def embed(self, inputs: list[str] | str) -> dict:
        body = json.dumps({"input": inputs, "encoding_format": "base64"})
        self.conn.request("POST", "/v1/embeddings", body,
                          {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(data.decode())
        return json.loads(data)


def start_server(model: Path, home: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "LOCALEMBED_HOME": home}
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", "0",
                             "--model", str(model), "--http-threads", "32",
                             "--cache-mb", "0"],  # the passes repeat their texts
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    return proc, url


def batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i:i + size] for i in range(0, len(texts), size)]


def latency(url: str, texts: list[str], clients: int, requests: int) -> tuple[float, ...]:
    """(p50 ms, p99 ms, requests/s) for one-text requests from ``clients`` threads."""
    times: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def run(c: int) -> None:
        client = Client(url)
        mine = []
        for r in range(per_client):
            start = time.perf_counter()
            client.embed(texts[(c * per_client + r) % len(texts)])
            mine.append(time.perf_counter() - start)
        with lock:
            times.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(times) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--dtype", default="f16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    texts = make_texts(args.texts)
    short = make_texts(64, seed=1, words=(4, 16))
    with tempfile.TemporaryDirectory() as home:
        model = starter_model(args.dtype, Path(home))
        best_engine = best_http = float("inf")
        for _ in range(args.repeats):
            with Engine(model) as engine:
                engine.embed(texts[:32])
                start = time.perf_counter()
                for batch in batches(texts, 32):
                    engine.embed(batch)
                best_engine = min(best_engine, time.perf_counter() - start)
            proc, url = start_server(model, home)
            try:
                client = Client(url)
                client.embed(texts[:32])
                start = time.perf_counter()
                for batch in batches(texts, 32):
                    client.embed(batch)
                best_http = min(best_http, time.perf_counter() - start)
            finally:
                proc.terminate()
                proc.wait(30)
        proc, url = start_server(model, home)
        try:
            Client(url).embed(short[:8])
            rows = [(c, *latency(url, short, c, args.requests)) for c in (1, 8, 32)]
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"\nstarter model {args.dtype}, {len(texts)} texts of 10-400 tokens in batches of 32; "
          f"latency with {args.requests} one-text requests of 5-20 tokens\n")
    print("| path | texts/s | HTTP/engine |")
    print("|---|---|---|")
    print(f"| engine in-process | {len(texts) / best_engine:.1f} | |")
    print(f"| HTTP /v1/embeddings | {len(texts) / best_http:.1f} | "
          f"{best_engine / best_http:.2f} |")
    print("\n| concurrent clients | p50 ms | p99 ms | requests/s |")
    print("|---|---|---|---|")
    for clients, p50, p99, rps in rows:
        print(f"| {clients} | {p50:.1f} | {p99:.1f} | {rps:.1f} |")


if __name__ == "__main__":
    main()
