"""What a loaded model holds in memory: the weights llama.cpp copies out of the mapped file.

    python benchmarks/memory_bench.py [--dtypes f16,q8_0,q4_0] [--model qwen3]
                                      [--llama-server PATH]

For each dtype of the full-shape synthetic model (written once under
~/.cache/localembed-bench/models), a fresh child process loads it as the server does (the
per-file probe, ``safe_load``: this CPU's repacking decision included), embeds one text, and
reports its VmRSS split into anonymous and file-backed memory and what llama.cpp copied out of
the mapping ("CPU_REPACK", "AMX", "CUDA0" buffers); then, as baselines of the same run, with
repacking forced on, with and without the release of the mapping's pages
(``release_mapped_pages`` replaced by a no-op). With ``--llama-server`` (or the binary
vs_llama_server.py builds, when it is there), llama-server on the same file, with and without
``--no-repack``, after one request.

The goal (issue 24): RSS <= file size + 300 MB, on a CPU that repacks and one that does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from startup_bench import memory  # noqa: E402
from vs_llama_server import (  # noqa: E402
    CACHE,
    SYNTHETIC,
    clean_env,
    free_port,
    llama_cpp_version,
    model_file,
)

MIB = 1 << 20

CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[4])
from startup_bench import memory
release = sys.argv[2] == "on"
force = sys.argv[3] == "force"
if not release:
    import localembed.engine.llama as llama
    llama.release_mapped_pages = lambda path, keep=(): 0
from localembed.engine.core import Engine
from localembed.engine.llama import RunnerOptions
if force:
    engine = Engine(sys.argv[1], options=RunnerOptions(repack=True))
else:
    engine = Engine(sys.argv[1], safe_load=True)  # as the server loads it: probed in a child
engine.embed(["a first text to embed, so that every buffer is in use"])
runner = engine.runner
print(json.dumps({**memory(os.getpid()), "repack": runner.repack, "copied": runner.copied_bytes,
                  "released": runner.released_bytes}))
"""


def localembed_rss(path: Path, release: bool, home: Path, force: bool = False) -> dict:
    env = clean_env(LOCALEMBED_HOME=str(home))
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), "on" if release else "off",
                          "force" if force else "auto", str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:  # a forced repack on a CPU whose repacked kernels crash
        return {"crashed": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss(s: dict) -> str:
    if "crashed" in s:
        return f"crashed ({s['crashed']})"
    return f"{s['VmRSS']:,.0f} ({s['RssAnon']:,.0f} + {s['RssFile']:,.0f})"


def llama_server_rss(binary: Path, path: Path, no_repack: bool) -> dict:
    import http.client

    port = free_port()
    argv = [str(binary), "-m", str(path), "--embeddings", "--host", "127.0.0.1", "--port",
            str(port), "-c", "512", "-np", "1", "-b", "512", "-ub", "512", "-ngl", "0"]
    if no_repack:
        argv.append("--no-repack")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:  # the AMX q8_0 kernel's SIGILL, on some CPUs
                return {"crashed": proc.returncode}
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/v1/embeddings", json.dumps(
                    {"input": "a first text to embed, so that every buffer is in use"}),
                    {"Content-Type": "application/json"})
                if conn.getresponse().status == 200:
                    return memory(proc.pid)
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("llama-server did not answer")
    finally:
        proc.terminate()
        proc.wait(30)


def mib(n: float) -> str:
    return f"{n / MIB:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="f16,q8_0,q4_0")
    parser.add_argument("--model", default="qwen3", choices=sorted(SYNTHETIC))
    parser.add_argument("--llama-server", type=Path, default=None)
    args = parser.parse_args()
    binary = args.llama_server
    if binary is None:
        built = (CACHE / "src" / f"llama_cpp_python-{llama_cpp_version()}" / "vendor"
                 / "llama.cpp" / "build" / "bin" / "llama-server")
        binary = built if built.is_file() else None
    home = CACHE / "memory-home"
    home.mkdir(parents=True, exist_ok=True)
    arch = SYNTHETIC[args.model]

    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next((line for line in f if line.startswith("flags")), "")
    amx = "amx_int8" in flags
    print(f"CPU: {cpu}, {os.cpu_count()} cores, AMX: {'yes' if amx else 'no'}; "
          f"llama.cpp from llama-cpp-python {llama_cpp_version()}; full-shape synthetic "
          f"{arch}\n")
    head = ("| file | localembed: copied out of the mapping | localembed: RSS (anon + file) "
            "| goal: file + 300 MB | repack forced, release off | repack forced |")
    if binary:
        head += " llama-server | llama-server --no-repack |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for dtype in args.dtypes.split(","):
        path = model_file(args.model, dtype)
        size = path.stat().st_size
        on = localembed_rss(path, True, home)
        forced_off = localembed_rss(path, False, home, force=True)
        forced = localembed_rss(path, True, home, force=True)
        goal = size + 300 * 1000 * 1000
        row = (f"| {dtype}, {mib(size)} MiB | {mib(on['copied'])} MiB "
               f"{'(repack on)' if on['repack'] else '(repack off)'} | **{rss(on)}** "
               f"| {'met' if on['VmRSS'] * MIB <= goal else 'NOT met'} "
               f"(file + {(on['VmRSS'] * MIB - size) / 1e6:,.0f} MB) | {rss(forced_off)} "
               f"| {rss(forced)} |")
        if binary:
            for no_repack in (False, True):
                s = llama_server_rss(binary, path, no_repack)
                row += f" {rss(s)} |"
        print(row, flush=True)
    print("\nMiB; RSS after one request; anon = RssAnon, file = RssFile (/proc/PID/status).")


if __name__ == "__main__":
    main()
