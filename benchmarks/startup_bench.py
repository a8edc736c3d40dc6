"""What a person waits for before the first vector, and what the server holds in memory.

    python benchmarks/startup_bench.py [--repeats 5] [--model all-minilm-l6-v2]

- ``python -c pass`` (the interpreter alone, the floor) and ``localembed --help``;
- ``localembed serve``: from the process start to ``/health`` answering (whatever it says:
  the model loads while the server listens) and to the first vector of a
  ``POST /v1/embeddings`` (the client retries until the port answers), in a home whose model
  probe is already done (as on every start but the first);
- the server's memory after that request: VmRSS, and its anonymous and file-backed parts.

Medians of ``--repeats`` (min in brackets). Prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def _ask(port: int, method: str, path: str, body: dict | None = None,
         answered: bool = False) -> dict | None:
    """The JSON reply when the status is 200 (or any status, with ``answered``); None when
    the port does not answer yet."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        conn.close()
    except OSError:
        return None
    return json.loads(data) if response.status == 200 or answered else None


def memory(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def serve_once(model: str, env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", str(port),
                             "-m", model], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        health = vector = None
        while vector is None:
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            if health is None and _ask(port, "GET", "/health", answered=True) is not None:
                health = time.perf_counter() - started
            reply = _ask(port, "POST", "/v1/embeddings", {"input": "hello", "model": "default"})
            if reply is not None:
                vector = time.perf_counter() - started
                health = health or vector
            else:
                time.sleep(0.005)
        return health, vector, memory(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def fmt(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    return (f"{statistics.median(values) * scale:.3f} {unit} "
            f"({min(values) * scale:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="all-minilm-l6-v2")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="localembed-startup-")
    env = {**os.environ, "LOCALEMBED_HOME": home, "PYTHONPATH": str(ROOT)}
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"model: {args.model}")
    serve_once(args.model, env)  # the first start probes the model in a child, once
    python = [wall([sys.executable, "-c", "pass"], env) for _ in range(args.repeats)]
    helps = [wall([sys.executable, "-m", "localembed", "--help"], env)
             for _ in range(args.repeats)]
    runs = [serve_once(args.model, env) for _ in range(args.repeats)]
    print("\n| measure | median (min) |\n|---|---|")
    print(f"| python -c pass | {fmt(python)} |")
    print(f"| localembed --help | {fmt(helps)} |")
    print(f"| serve: start to /health answering | {fmt([r[0] for r in runs])} |")
    print(f"| serve: start to the first vector | {fmt([r[1] for r in runs])} |")
    for key in ("VmRSS", "RssAnon", "RssFile"):
        print(f"| server {key} after one request | "
              f"{fmt([r[2][key] for r in runs], 'MiB')} |")


if __name__ == "__main__":
    main()
