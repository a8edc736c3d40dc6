"""localembed against llama.cpp's own llama-server: same GGUF, same threads, interleaved A/B.

    python benchmarks/vs_llama_server.py [--models starter,gemma,qwen3] [--rounds 3] [--quick]
                                         [--threads N] [--out results.md]

Both servers run as separate processes on this machine and are driven over HTTP by the
asyncio load generator in ``loadgen.py`` (this process; pre-encoded requests, keep-alive, no
JSON parsing while timing; its own CPU time is measured and reported for both sides).

Workloads, the same texts for both servers (random English words, trimmed to fit the model):

1. batches of 32 texts of 8-300 words (mixed lengths): texts/s
2. 32 concurrent clients, one 8-300-word text per request: requests/s
3. batches of 32 short texts of 3-20 words: texts/s
4. 32 concurrent clients, one short text per request: requests/s
5. one client, one short text per request, p50 latency, with ``encoding_format`` base64 and
   float

Models: the bundled starter (all-MiniLM-L6-v2, f16) and full-shape synthetic EmbeddingGemma
(``gemma``) and Qwen3-Embedding-0.6B (``qwen3``) models, f16, cached under
~/.cache/localembed-bench/models. The Qwen3 shape is too slow on 2 cores for 8-300 words: its
long texts are 8-40 words (``SIZES`` has every model's text counts, rounds and configurations).

Each side runs in a few configurations: llama-server with flash attention on/off, batch =
ubatch 512/2048, 8 slots, and OpenMP spinning (its default) or GOMP_SPINCOUNT=20000 (what
localembed sets for itself); localembed with 16 or 32 HTTP threads. The larger models, being
compute-bound, get fewer configurations and rounds. Every configuration of both sides is
started once per model (time to first vector and RSS are measured then, one server at a time)
and then all stay up, idle but for the one being measured. Round 1 measures every configuration
of every workload (the sides alternate); configurations more than ``--prune`` slower than their
side's best are dropped, and the remaining rounds alternate A/B again. Each configuration's
score is its best round (noise on a shared machine only ever slows a pass down); each side is
represented by its best configuration. Ratios are localembed / llama-server, so > 1 means
localembed is faster (for latency: llama-server p50 / localembed p50).

Before timing, both servers embed sample texts (float JSON): the vectors must have the same
dimension, and their cosine similarity shows both run the same model and pooling (> 0.99 is
required for the starter model, whose weights are real).

llama-server is built once from the llama.cpp vendored in the installed llama-cpp-python's
sdist (``pip download --no-binary``) under ~/.cache/localembed-bench/, or given with
``--llama-server PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from engine_bench import make_texts  # noqa: E402

from localembed.config.settings import DEFAULT_HTTP_THREADS  # noqa: E402

CACHE = Path(os.environ.get("LOCALEMBED_BENCH_CACHE", "~/.cache/localembed-bench")).expanduser()
CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")
SYNTHETIC = {"gemma": "gemma-embedding", "qwen3": "qwen3"}


# --------------------------------------------------------------------------- llama-server

def llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


def llama_server_binary(jobs: int = CORES) -> Path:
    """The cached llama-server for the installed llama-cpp-python version; built if absent."""
    version = llama_cpp_version()
    root = CACHE / "src" / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    binary = root / "build" / "bin" / "llama-server"
    if binary.is_file():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"build-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build
        if binary.is_file():
            return binary
        log = CACHE / f"build-{version}.log"
        print(f"building llama-server from llama-cpp-python {version}'s sources "
              f"(once; log in {log})...", file=sys.stderr, flush=True)
        with open(log, "w") as out:
            def step(*argv: str, cwd: Path | None = None) -> None:
                subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True)

            if not root.is_dir():
                sdist = CACHE / "sdist"
                step(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                     f"llama-cpp-python=={version}", "-d", str(sdist))
                archive = next(sdist.glob(f"llama_cpp_python-{version}.tar.gz"))
                with tarfile.open(archive) as tar:
                    tar.extractall(CACHE / "src", filter="data")
            step("cmake", "-B", "build", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF",
                 "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", cwd=root)
            step("cmake", "--build", "build", "--target", "llama-server", f"-j{jobs}", cwd=root)
    return binary


def server_flags(binary: Path) -> set[str]:
    """The long flags this llama-server build accepts."""
    text = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    return {word.rstrip(",") for word in text.split() if word.startswith("--")}


def server_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    lines = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("version")]
    return lines[0] if lines else "?"


# --------------------------------------------------------------------------- models, texts

@dataclass
class Model:
    name: str
    path: Path
    max_tokens: int  # longest input localembed serves for it
    context: int  # trained context
    causal: bool
    sizes: dict  # texts (or requests) per timed pass, rounds, configurations: see SIZES


def model_file(name: str, dtype: str = "f16") -> Path:
    if name == "starter":
        from localembed.models.starter import starter_path

        return starter_path()
    arch = SYNTHETIC[name]
    path = CACHE / "models" / f"synthetic-{arch}-full-{dtype}.gguf"
    if not path.is_file():
        from localembed.testing.synthetic import write_model

        print(f"writing the full-shape synthetic {arch} model to {path}...", file=sys.stderr,
              flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        write_model(arch, tmp, dtype=dtype, preset="full")
        tmp.replace(path)
    return path


# Per model: texts per timed pass of 8-300 words ("long"; "max_words" caps that range for a
# model too slow to run it in a few minutes), of 3-20 words ("short"), one-text requests
# ("latency"); default rounds and configurations. On 2 cores a batch of 32 texts of 8-300 words
# takes about 1 s with the starter (all-MiniLM, 22M parameters) and 10 s with the EmbeddingGemma
# shape (300M); the Qwen3 shape (600M, about 2 tokens per word with the synthetic vocabulary,
# ~80 tokens/s here) would take over a minute, so its long texts are 8-40 words. The larger
# models are compute-bound: HTTP threads and ubatch size hardly matter there, so they get
# fewer configurations and rounds.
SIZES = {
    "starter": {"long": 64, "short": 256, "latency": 50, "max_words": 300, "rounds": 3,
                "fa": "on,off", "ubatch": "512,2048", "http_threads": "64,32"},
    "gemma": {"long": 32, "short": 64, "latency": 20, "max_words": 300, "rounds": 2,
              "fa": "on", "ubatch": "512", "http_threads": "64"},
    "qwen3": {"long": 32, "short": 32, "latency": 6, "max_words": 40, "rounds": 1,
              "fa": "on", "ubatch": "512", "http_threads": "64"},
}
QUICK = {"starter": {"long": 32, "short": 128, "latency": 30, "rounds": 1, "ubatch": "512",
                     "http_threads": "64"},
         "gemma": {"long": 32, "short": 32, "latency": 10, "max_words": 150, "rounds": 1},
         "qwen3": {"long": 32, "short": 32, "latency": 4, "max_words": 24, "rounds": 1}}


def load_model(name: str, quick: bool) -> Model:
    from localembed.engine.inspect import inspect_gguf
    from localembed.engine.llama import DEFAULT_MAX_TOKENS

    path = model_file(name)
    info = inspect_gguf(path)
    max_tokens = max(8, min(info.default_max_tokens, DEFAULT_MAX_TOKENS, info.context))
    sizes = {**SIZES[name], **(QUICK[name] if quick else {})}
    return Model(name, path, max_tokens, info.context, causal=name == "qwen3", sizes=sizes)


class Tokenizer:
    """llama.cpp's tokenizer for a GGUF (vocabulary only, no weights loaded)."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=True, special=False)) + 1


def fit_texts(texts: list[str], tokenizer: Tokenizer, limit: int) -> tuple[list[str], list[int]]:
    """Drop words from the end of each text until it fits ``limit`` tokens (so that neither
    server truncates or rejects it); also returns the token counts."""
    out, counts = [], []
    for text in texts:
        words = text.split(" ")
        n = tokenizer.count(text)
        while n > limit:
            words = words[:max(1, int(len(words) * limit / n) - 1)]
            text = " ".join(words)
            n = tokenizer.count(text)
        out.append(text)
        counts.append(n)
    return out, counts


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
    return pids


def rss_mib(pid: int) -> float:
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (all threads)."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


@dataclass
class Server:
    side: str  # "localembed" or "llama-server"
    config: str  # short label of the configuration
    argv: list[str]
    port: int
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    first_vector_s: float = 0.0
    rss_mib: float = 0.0
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.side} ({self.config})"

    def start(self, sample: str, logs: Path, timeout: float = 600) -> None:
        """Start, and time until the first vector comes back; then take RSS."""
        self.log = logs / f"{self.side}-{self.port}.log"
        body = json.dumps({"input": sample, "encoding_format": "base64"})
        start = time.perf_counter()
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.proc.returncode}); see {self.log}:\n"
                                 + self.log.read_text()[-3000:])
            if time.perf_counter() - start > timeout:
                self.stop()
                raise SystemExit(f"{self.name} did not answer in {timeout}s; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                conn.request("POST", loadgen.PATH, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                conn.close()
                if response.status == 200:
                    json.loads(data)["data"][0]["embedding"]
                    break
                if response.status != 503:  # 503: llama-server still loading
                    raise SystemExit(f"{self.name}: HTTP {response.status}: {data[:500]!r}")
            except (ConnectionError, OSError):
                pass
            time.sleep(0.02)
        self.first_vector_s = time.perf_counter() - start
        self.rss_mib = rss_mib(self.proc.pid)

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# What localembed sets for itself (localembed/engine/llama.py): spin briefly at OpenMP barriers.
SHORT_SPIN = "20000"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without OpenMP wait settings (importing localembed's engine
    sets GOMP_SPINCOUNT here), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra)
    return env


def localembed_servers(model: Model, threads: int, http_threads: list[int],
                       home: Path) -> list[Server]:
    servers = []
    for h in http_threads:
        port = free_port()
        argv = [sys.executable, "-m", "localembed", "serve", "--model", str(model.path),
                "--port", str(port), "--threads", str(threads), "--http-threads", str(h),
                # the workloads repeat their texts: decode them as llama-server must
                "--cache-mb", "0"]
        label = "default" if h == DEFAULT_HTTP_THREADS else f"http-threads {h}"
        env = clean_env(LOCALEMBED_HOME=str(home))
        servers.append(Server("localembed", label, argv, port, env))
    return servers


def llama_servers(binary: Path, model: Model, threads: int, grid: list[tuple[str, int, int, str]],
                  longest: int, http_threads: int) -> list[Server]:
    """One server per (flash attention, batch = ubatch, slots, OpenMP wait policy) of ``grid``."""
    flags = server_flags(binary)
    servers = []
    for fa, ub, slots, omp in grid:
        # Each slot must hold the longest input (-c is shared among the slots); a non-causal
        # model must also fit each input into one ubatch.
        per_slot = 1 << (max(longest + 16, 64) - 1).bit_length()
        per_slot = min(per_slot, model.context)
        if not model.causal and ub < longest:
            continue
        port = free_port()
        argv = [str(binary), "-m", str(model.path), "--embeddings", "-t", str(threads),
                "-tb", str(threads), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(per_slot * slots), "-np", str(slots), "-b", str(ub), "-ub", str(ub),
                "-fa", fa, "-ngl", "0"]
        if http_threads:
            argv += ["--threads-http", str(http_threads)]
        if "--no-webui" in flags:
            argv.append("--no-webui")
        label = f"fa {fa}, b/ub {ub}, np {slots}"
        if omp == "short-spin":
            label += ", short spin"
            env = clean_env(GOMP_SPINCOUNT=SHORT_SPIN)
        elif omp == "passive":
            label += ", OMP passive"
            env = clean_env(OMP_WAIT_POLICY="PASSIVE")
        else:
            env = clean_env()
        servers.append(Server("llama-server", label, argv, port, env))
    return servers


# --------------------------------------------------------------------------- workloads

@dataclass
class Workload:
    name: str
    unit: str  # "texts/s", "req/s" or "ms"
    texts: int  # texts per pass (for texts/s)
    clients: int
    bodies: list[tuple[list[str] | str, str]]  # (input, encoding_format) per request

    def requests(self, port: int) -> list[bytes]:
        return [loadgen.encode_request("127.0.0.1", port, inputs, fmt)
                for inputs, fmt in self.bodies]


def workloads(long: list[str], short: list[str], model: Model, words: str) -> list[Workload]:
    sizes = model.sizes
    lt, st = long[:sizes["long"]], short[:sizes["short"]]
    lat = short[:sizes["latency"]]

    def batches(texts: list[str]) -> list[tuple[list[str] | str, str]]:
        return [(texts[i:i + 32], "base64") for i in range(0, len(texts), 32)]

    return [
        Workload(f"{words} words, batches of 32", "texts/s", len(lt), 1, batches(lt)),
        Workload(f"{words} words, 32 clients x 1 text", "req/s", len(lt), 32,
                 [(t, "base64") for t in lt]),
        Workload("3-20 words, batches of 32", "texts/s", len(st), 1, batches(st)),
        Workload("3-20 words, 32 clients x 1 text", "req/s", len(st), 32,
                 [(t, "base64") for t in st]),
        Workload("1 client, 1 short text, base64: p50", "ms", len(lat), 1,
                 [(t, "base64") for t in lat]),
        Workload("1 client, 1 short text, float: p50", "ms", len(lat), 1,
                 [(t, "float") for t in lat]),
    ]


@dataclass
class Pass:
    value: float  # texts/s, req/s or p50 ms
    wall_s: float
    gen_cpu_s: float  # load generator CPU seconds
    server_cpu_s: float
    requests: int
    texts: int
    p99_ms: float


@dataclass
class Cell:
    """All passes of one server on one workload."""

    server: Server
    passes: list[Pass] = field(default_factory=list)

    def best(self, unit: str) -> Pass:
        key = (lambda p: p.value) if unit == "ms" else (lambda p: -p.value)
        return min(self.passes, key=key)


def measure(server: Server, work: Workload) -> Pass:
    requests = work.requests(server.port)
    loadgen.run(server.url, requests[:1], 1)  # warm-up (also re-opens idle connections)
    cpu = server.cpu()
    result = loadgen.run(server.url, requests, work.clients)
    server_cpu = server.cpu() - cpu
    if result.errors:
        raise SystemExit(f"{server.name} failed {result.errors} requests in '{work.name}': "
                         f"{result.first_error}")
    if work.unit == "ms":
        value = result.p50_ms
    elif work.unit == "texts/s":
        value = work.texts / result.wall_s
    else:
        value = result.rps
    return Pass(value, result.wall_s, result.cpu_s, server_cpu, result.requests, work.texts,
                result.p99_ms)


def better(unit: str, a: float, b: float) -> bool:
    return a < b if unit == "ms" else a > b


# --------------------------------------------------------------------------- verification

def verify(a: Server, b: Server, texts: list[str]) -> dict:
    """Both servers embed ``texts`` (float JSON); compare dimensions, vectors, token counts."""
    result = {}
    for fmt in ("float", "base64"):
        ra = loadgen.fetch(a.url, [loadgen.encode_request("127.0.0.1", a.port, texts, fmt)])[0]
        rb = loadgen.fetch(b.url, [loadgen.encode_request("127.0.0.1", b.port, texts, fmt)])[0]
        va, vb = np.array(loadgen.vectors(ra)), np.array(loadgen.vectors(rb))
        if va.shape != vb.shape:
            raise SystemExit(f"{fmt}: localembed returned {va.shape}, llama-server {vb.shape}")
        na = va / np.linalg.norm(va, axis=1, keepdims=True)
        nb = vb / np.linalg.norm(vb, axis=1, keepdims=True)
        cos = (na * nb).sum(axis=1)
        result[fmt] = {"dims": va.shape[1], "min_cos": float(cos.min()),
                       "mean_cos": float(cos.mean()),
                       "tokens": (ra.get("usage", {}).get("prompt_tokens"),
                                  rb.get("usage", {}).get("prompt_tokens"))}
    return result


# --------------------------------------------------------------------------- the run

def machine_facts(threads: int, binary: Path) -> list[str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 1024 ** 2:.0f} GiB"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date {dt.datetime.now().astimezone().isoformat(timespec='seconds')}, "
        f"{platform.node()}, {platform.system()} {platform.release()}",
        f"CPU {cpu}, {CORES} cores, {mem} RAM, load average at start {load}",
        f"threads {threads} on both sides; llama-cpp-python {llama_cpp_version()}; "
        f"llama-server {server_version(binary)}",
        f"load generator: asyncio{' + uvloop' if loadgen.uvloop else ''} raw HTTP/1.1 "
        "keep-alive, Python " + platform.python_version(),
    ]


def fmt_value(unit: str, v: float) -> str:
    return f"{v:.1f} ms" if unit == "ms" else f"{v:.1f} {unit}"


def bench_model(model: Model, args: argparse.Namespace, binary: Path, logs: Path,
                out: list[str], detail: list[str], startup: list[str], overhead: list[str],
                checks: list[str], commands: list[str], plan: list[str]) -> None:
    tokenizer = Tokenizer(model.path)
    low, high = (int(x) for x in args.long_words.split("-"))
    long_words = (low, min(high, model.sizes["max_words"]) if args.long_words == "8-300" else high)
    long_raw = make_texts(model.sizes["long"], seed=1, words=long_words)
    short_raw = make_texts(max(model.sizes["short"], model.sizes["latency"]), seed=2, words=(3, 20))
    # Leave room for the few tokens a server may add or tokenize differently.
    limit = model.max_tokens - 4
    long, long_tokens = fit_texts(long_raw, tokenizer, limit)
    short, short_tokens = fit_texts(short_raw, tokenizer, limit)
    del tokenizer
    trimmed = sum(a != b for a, b in zip(long, long_raw, strict=True))
    longest = max(long_tokens + short_tokens)
    work = workloads(long, short, model, f"{long_words[0]}-{long_words[1]}")
    print(f"\n## {model.name}: {model.path.name} ({model.path.stat().st_size / 2**20:.0f} MiB); "
          f"long texts {statistics.mean(long_tokens[:model.sizes['long']]):.0f} tokens on "
          f"average (max {longest}; {trimmed} trimmed to {limit}), short "
          f"{statistics.mean(short_tokens):.0f}", file=sys.stderr, flush=True)

    with open(model.path, "rb") as f:  # page cache warm for whichever server starts first
        while f.read(1 << 24):
            pass
    ubatch = [int(x) for x in (args.ubatch or model.sizes["ubatch"]).split(",")]
    fas = (args.fa or model.sizes["fa"]).split(",")
    grid = [(fa, ub, np_, omp) for fa in fas for ub in ubatch
            for np_ in args.slots for omp in args.omp.split(",")]
    http_threads = [int(x) for x in (args.http_threads or model.sizes["http_threads"])
                    .split(",")]
    side_a = localembed_servers(model, args.threads, http_threads, logs / "home")
    side_b = llama_servers(binary, model, args.threads, grid, longest, args.ls_http_threads)
    servers = side_a + side_b
    rounds = args.rounds or model.sizes["rounds"]
    plan.append(
        f"{model.name}: {rounds} round(s); {model.sizes['long']} texts of "
        f"{long_words[0]}-{long_words[1]} words "
        f"({statistics.mean(long_tokens[:model.sizes['long']]):.0f} tokens on average, "
        f"{trimmed} trimmed to {limit}), {model.sizes['short']} of 3-20 words "
        f"({statistics.mean(short_tokens[:model.sizes['short']]):.0f} tokens), "
        f"{model.sizes['latency']} latency requests; localembed: "
        + "; ".join(x.config for x in side_a) + "; llama-server: "
        + "; ".join(x.config for x in side_b))
    for s in (side_a[0], side_b[0]):
        commands.append(" ".join(Path(x).name if x == sys.executable else x for x in s.argv)
                        .replace(str(CACHE), "~/.cache/localembed-bench"))
    try:
        for s in servers:  # one at a time, the others idle or not yet started
            s.start(short[0], logs)
            startup.append(f"| {model.name} | {s.side} | {s.config} | {s.first_vector_s:.2f} | "
                           f"{s.rss_mib:.0f} |")
            print(f"  started {s.name}: first vector after {s.first_vector_s:.2f}s, "
                  f"RSS {s.rss_mib:.0f} MiB", file=sys.stderr, flush=True)
        sample = long[:4] + short[:4]
        check = verify(side_a[0], side_b[0], sample)
        for fmt, c in check.items():
            checks.append(f"| {model.name} | {fmt} | {c['dims']} | {c['min_cos']:.6f} | "
                          f"{c['mean_cos']:.6f} | {c['tokens'][0]} / {c['tokens'][1]} |")
        if model.name == "starter" and check["float"]["min_cos"] < 0.99:
            raise SystemExit(f"starter vectors differ: {check}")

        cells = {(w.name, s.name): Cell(s) for w in work for s in servers}
        alive = {w.name: list(servers) for w in work}
        for r in range(rounds):
            for w in work:
                a = [s for s in alive[w.name] if s.side == "localembed"]
                b = [s for s in alive[w.name] if s.side == "llama-server"]
                if r % 2:
                    a, b = b, a
                order = [s for pair in zip(a, b, strict=False) for s in pair]
                order += a[len(b):] + b[len(a):]
                for s in order:
                    p = measure(s, w)
                    cells[(w.name, s.name)].passes.append(p)
                    print(f"  round {r + 1} {w.name}: {s.name} {fmt_value(w.unit, p.value)} "
                          f"(server {p.server_cpu_s / p.wall_s:.2f} cores)",
                          file=sys.stderr, flush=True)
                if r == 0 and rounds > 1:  # drop clearly worse configurations
                    for side in ("localembed", "llama-server"):
                        mine = [s for s in alive[w.name] if s.side == side]
                        scores = {s.name: cells[(w.name, s.name)].best(w.unit).value
                                  for s in mine}
                        top = (min if w.unit == "ms" else max)(scores.values())
                        for s in mine:
                            v = scores[s.name]
                            worse = v / top - 1 if w.unit == "ms" else top / v - 1
                            if worse > args.prune:
                                alive[w.name].remove(s)

        for w in work:
            best = {}
            for side in ("localembed", "llama-server"):
                mine = [cells[(w.name, s.name)] for s in servers if s.side == side]
                best[side] = min(mine, key=lambda c: (c.best(w.unit).value if w.unit == "ms"
                                                      else -c.best(w.unit).value))
            pa, pb = best["localembed"].best(w.unit), best["llama-server"].best(w.unit)
            ca, cb = best["localembed"].server.config, best["llama-server"].server.config
            if w.unit == "ms":
                ratio = f"{pb.value / pa.value:.2f} ({pa.value - pb.value:+.1f} ms)"
            else:
                ratio = f"{pa.value / pb.value:.2f}"
            out.append(f"| {model.name} | {w.name} | {fmt_value(w.unit, pa.value)} ({ca}) | "
                       f"{fmt_value(w.unit, pb.value)} ({cb}) | {ratio} |")
            for cell in (best["localembed"], best["llama-server"]):
                p = cell.best(w.unit)
                overhead.append(
                    f"| {model.name} | {w.name} | {cell.server.side} | "
                    f"{p.gen_cpu_s / p.requests * 1e6:.0f} | {p.gen_cpu_s / p.wall_s:.1%} | "
                    f"{p.server_cpu_s / p.wall_s:.2f} | "
                    f"{p.server_cpu_s / p.texts * 1e3:.1f} |")
            for s in servers:
                cell = cells[(w.name, s.name)]
                values = ", ".join(f"{fmt_value(w.unit, p.value)} (p99 {p.p99_ms:.0f} ms)"
                                   for p in cell.passes)
                detail.append(f"| {model.name} | {w.name} | {s.name} | {values} |")
    finally:
        for s in servers:
            s.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="starter,gemma,qwen3",
                        help="Comma-separated: starter, gemma, qwen3.")
    parser.add_argument("--rounds", type=int, default=None,
                        help="A/B rounds (default: 3 starter, 2 gemma, 1 qwen3).")
    parser.add_argument("--quick", action="store_true",
                        help="One round, fewer texts, fewer configurations.")
    parser.add_argument("--threads", type=int, default=CORES,
                        help="llama.cpp threads on both sides (default: all cores).")
    parser.add_argument("--long-words", default="8-300",
                        help="Words per long text, MIN-MAX (default 8-300, capped per model: "
                             "8-40 for qwen3).")
    parser.add_argument("--fa", default=None,
                        help="llama-server -fa values (default on,off for the starter, on for "
                             "the larger models).")
    parser.add_argument("--ubatch", default=None,
                        help="llama-server -b = -ub values (default 512,2048 for the starter, "
                             "512 for the larger models and with --quick).")
    parser.add_argument("--omp", default="spin,short-spin",
                        help="llama-server OpenMP wait policies: spin (its default), "
                             "short-spin (GOMP_SPINCOUNT=20000, as localembed sets for itself), "
                             "passive (OMP_WAIT_POLICY=PASSIVE).")
    parser.add_argument("--ls-http-threads", type=int, default=40,
                        help="llama-server --threads-http (default 40; 0: its own default, "
                             "n_parallel + 4, with which keep-alive clients beyond that number "
                             "wait for other connections to close).")
    parser.add_argument("--slots", default=None, help="llama-server -np values (default 8).")
    parser.add_argument("--http-threads", default=None,
                        help="localembed --http-threads values (default 64,32 for the starter, "
                             "64 (its default) for the larger models and with --quick).")
    parser.add_argument("--prune", type=float, default=0.15,
                        help="After round 1, drop configurations this much slower than their "
                             "side's best (default 0.15).")
    parser.add_argument("--llama-server", type=Path, default=None,
                        help="A llama-server binary (default: build and cache one).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the report here.")
    args = parser.parse_args()
    args.slots = [int(x) for x in (args.slots or "8").split(",")]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in SIZES:
            parser.error(f"unknown model {name!r}; choose from {', '.join(SIZES)}")
    if shutil.which("cmake") is None and args.llama_server is None:
        parser.error("building llama-server needs cmake (or pass --llama-server PATH)")

    # On SIGTERM too, unwind so that every server this run started is stopped (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binary = args.llama_server or llama_server_binary()
    facts = machine_facts(args.threads, binary)
    out: list[str] = []
    detail: list[str] = []
    startup: list[str] = []
    overhead: list[str] = []
    checks: list[str] = []
    commands: list[str] = []
    plan: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vs-llama-server-") as tmp:
        logs = Path(tmp)
        (logs / "home").mkdir()
        for name in names:
            model = load_model(name, args.quick)
            bench_model(model, args, binary, logs, out, detail, startup, overhead, checks,
                        commands, plan)
    elapsed = time.perf_counter() - started

    lines = ["# localembed vs llama-server", ""]
    lines += [f"- {f}" for f in facts]
    lines += ["- A/B alternating rounds; each configuration's best round, each side's best "
              f"configuration; after round 1, configurations > {args.prune:.0%} behind their "
              f"side's best are dropped; total {elapsed / 60:.1f} min",
              "- llama-server: -c = np x (a power of two >= the longest input), -ngl 0, "
              f"--threads-http {args.ls_http_threads or '(default)'}; 'short spin' = "
              f"GOMP_SPINCOUNT={SHORT_SPIN} (localembed sets that for itself), 'OMP passive' = "
              "OMP_WAIT_POLICY=PASSIVE; else OpenMP spins (300,000 times)"]
    lines += [f"- {p}" for p in plan]
    lines += [
              "- ratio = localembed / llama-server (> 1: localembed faster); for latency, "
              "llama-server p50 / localembed p50 and localembed minus llama-server", ""]
    lines += ["| model | workload | localembed | llama-server | ratio |", "|---|---|---|---|---|"]
    lines += out
    lines += ["", "### Same model on both sides (sample of 4 long + 4 short texts)", "",
              "| model | encoding | dims | min cosine | mean cosine | prompt tokens "
              "(localembed / llama-server) |", "|---|---|---|---|---|---|"] + checks
    lines += ["", "### Startup and memory (time from process start to the first vector; "
              "VmRSS with children after it)", "",
              "| model | server | configuration | first vector s | RSS MiB |",
              "|---|---|---|---|---|"] + startup
    lines += ["", "### Command lines (first configuration of each side)", ""]
    lines += [f"    {c}" for c in commands]
    lines += ["", "### Load generator and server CPU (each side's best pass)", "",
              "| model | workload | server | load generator CPU us/request | load generator "
              "share of a core | server cores busy | server CPU ms/text |",
              "|---|---|---|---|---|---|---|"] + overhead
    lines += ["", "### Every configuration, every round", "",
              "| model | workload | server (configuration) | rounds |", "|---|---|---|---|"]
    lines += detail
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
