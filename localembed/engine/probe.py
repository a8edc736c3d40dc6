"""Run a model once in a child process before this process loads it, and remember the verdict.

llama.cpp does not fail the way Python code does: a malformed file, an assertion in a kernel or
an instruction the CPU refuses ends the whole process (SIGABRT, SIGSEGV, SIGILL), and no
``try`` catches it. A server that loads such a model in-process dies with every request in
flight; a CLI exits 132 with no word. So every model is first loaded and run in a child:

* ``check_model`` (the server, the CLI, ``import`` and ``pull``): the file with the options it
  will be served with. When the child dies with weight repacking on (llama.cpp's "extra buffer
  types": its AMX q8_0 kernel dies with SIGILL on some CPUs that report AMX), it is tried again
  without; the verdict (repack or not, or the reason it cannot be served) is kept per file,
  llama.cpp build and options, in memory and in the home's cache, so each is probed once.
* ``repack_allowed`` (every other in-process load: ``Engine`` used directly, tests): whether the
  repacked kernels of this llama.cpp build run on this CPU at all, decided once per build and
  CPU by running small quantized models in a child.

What the child saw is reported in the user's terms ("illegal instruction: ..."), not as its
last line of stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from localembed.engine.inspect import GGUFInfo, ModelLoadError
from localembed.engine.llama import LlamaRunner, RunnerOptions, llama_cpp

# The frozen (PyInstaller) app has no ``python -m``: it runs itself with this flag instead
# (installer/launcher.py hands it to ``child_main``).
PROBE_FLAG = "--localembed-probe"
# A child that neither answers nor dies within this long is taken as hung (a 16 GB model on a
# slow disk still loads well within it).
PROBE_TIMEOUT = 600.0
# For tests of the fallback on machines whose kernels never crash: a child with weight
# repacking on kills itself with this signal (e.g. "SIGILL") before decoding.
FAULT_ENV = "LOCALEMBED_PROBE_FAULT_WITH_REPACK"
_EXIT_REFUSED = 3  # the child raised ModelLoadError: its message is the reason

_SIGNAL_REASONS = {
    signal.SIGILL: "illegal instruction: llama.cpp used a CPU feature this machine does not "
                   "allow (its optimised kernels for this CPU)",
    signal.SIGSEGV: "segmentation fault inside llama.cpp (a malformed file or a llama.cpp bug)",
    signal.SIGBUS: "bus error reading the model (the file changed while loading, or the disk "
                   "failed)",
    signal.SIGFPE: "arithmetic fault inside llama.cpp",
    signal.SIGKILL: "killed, most likely for lack of memory",
}


_SOURCE_PATH = re.compile(r"^\S*[/\\](?=[^/\\\s]+:\d+: )")


def crash_reason(returncode: int, stderr: str) -> str:
    """What a child's death means, for a person: the signal's meaning, and for an abort the
    assertion llama.cpp printed."""
    if returncode >= 0:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else f"the check exited with status {returncode}"
    number = -returncode
    if number == signal.SIGABRT:
        asserted = [ln.strip() for ln in stderr.splitlines()
                    if "GGML_ASSERT" in ln or "GGML_ABORT" in ln or "error" in ln.lower()]
        # llama.cpp prints its source path first: only the file and line tell anything.
        detail = f" ({_SOURCE_PATH.sub('', asserted[-1])[:300]})" if asserted else ""
        return f"llama.cpp aborted{detail}"
    try:
        sig: signal.Signals | None = signal.Signals(number)
        name = sig.name  # type: ignore[union-attr]
    except ValueError:
        sig, name = None, f"signal {number}"
    reason = _SIGNAL_REASONS.get(sig, "llama.cpp crashed") if sig else "llama.cpp crashed"
    return f"{reason} [{name}]"


def child_command(*args: str) -> list[str]:
    """How to start the probe child, from a normal install or the frozen app."""
    if getattr(sys, "frozen", False):
        return [sys.executable, PROBE_FLAG, *args]
    return [sys.executable, "-m", "localembed.engine.probe", *args]


def _build_files() -> list[Path]:
    lib = Path(llama_cpp.__file__).parent / "lib"
    return sorted(lib.glob("*")) if lib.is_dir() else []


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), else the platform's description of it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return f"{platform.machine()} {platform.processor()}"


_build_id: str | None = None


def build_id() -> str:
    """This llama.cpp build on this CPU: its version, its libraries and the CPU's features."""
    global _build_id
    if _build_id is None:
        parts = [llama_cpp.__version__, _cpu_flags(),
                 llama_cpp.llama_print_system_info().decode("utf-8", "replace")]
        for path in _build_files():
            with contextlib.suppress(OSError):
                stat = path.stat()
                parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
        _build_id = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return _build_id


# -- the verdict cache -----------------------------------------------------------------------

_memo: dict[str, dict] = {}
_memo_lock = threading.Lock()
# One probe at a time per key: two loads of one model wait for one child.
_key_locks: dict[str, threading.Lock] = {}


def _cache_file() -> Path:
    from localembed.config.paths import home_dir

    return home_dir() / "cache" / "probes.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: str, verdict: dict) -> None:
    with _memo_lock:
        _memo[key] = verdict
    path = _cache_file()
    try:  # a cache: failing to write it only means probing again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = verdict
        fd, tmp = tempfile.mkstemp(prefix=".probes.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


def _recall(key: str) -> dict | None:
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    verdict = _read_cache().get(key)
    if isinstance(verdict, dict):
        with _memo_lock:
            _memo[key] = verdict
        return verdict
    return None


def _lock_for(key: str) -> threading.Lock:
    with _memo_lock:
        return _key_locks.setdefault(key, threading.Lock())


# -- running the child -----------------------------------------------------------------------

@dataclass(frozen=True)
class ChildResult:
    ok: bool
    crashed: bool  # died by a signal (or hung), as opposed to refusing the model
    reason: str | None = None
    transient: bool = False  # nothing was learnt about the model: do not remember it


def _run_child(args: list[str], timeout: float) -> ChildResult:
    try:
        proc = subprocess.run(child_command(*args), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ChildResult(False, True, f"the check did not finish within {timeout:.0f} s")
    except OSError as exc:  # no interpreter to run: nothing can be checked
        return ChildResult(False, False, f"the check could not be started: {exc}",
                           transient=True)
    if proc.returncode == 0:
        return ChildResult(True, False)
    if proc.returncode == _EXIT_REFUSED:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return ChildResult(False, False, lines[-1] if lines else "refused")
    return ChildResult(False, proc.returncode < 0, crash_reason(proc.returncode, proc.stderr))


def _options_json(options: RunnerOptions) -> str:
    return json.dumps(asdict(options))


def check_model(info: GGUFInfo, options: RunnerOptions,
                timeout: float = PROBE_TIMEOUT) -> tuple[RunnerOptions, str | None]:
    """``options`` with ``repack`` decided for ``info``'s file after a run in a child process
    (once per file, llama.cpp build and options), and a note when the first try failed and a
    fallback serves it; ModelLoadError when the file cannot be served, saying why."""
    stat = info.path.stat()
    relevant = {k: v for k, v in asdict(options).items()
                if k not in ("threads", "workers", "repack")}
    key = hashlib.sha256(json.dumps(
        [str(info.path), stat.st_size, stat.st_mtime_ns, build_id(), relevant],
        sort_keys=True).encode()).hexdigest()[:32]
    with _lock_for(key):
        verdict = _recall(key)
        if verdict is None:
            verdict = _probe(info, options, timeout)
            if not verdict.get("transient"):
                _remember(key, verdict)
    if verdict.get("error"):
        raise ModelLoadError(f"{info.path.name} cannot be served: {verdict['error']}")
    return replace(options, repack=bool(verdict["repack"])), verdict.get("note")


def _probe(info: GGUFInfo, options: RunnerOptions, timeout: float) -> dict:
    want = options.repack is not False
    first = _run_child(["model", info.to_json(),
                        _options_json(replace(options, repack=want, workers=1))], timeout)
    if first.ok:
        return {"repack": want, "at": time.time()}
    if not first.crashed:
        return {"error": first.reason, "at": time.time(), "transient": first.transient}
    if want:  # the crash may be the repacked kernels': try the plain ones
        second = _run_child(["model", info.to_json(),
                             _options_json(replace(options, repack=False, workers=1))], timeout)
        if second.ok:
            return {"repack": False, "at": time.time(),
                    "note": f"{info.path.name}: with weight repacking llama.cpp failed "
                            f"({first.reason}); it runs without repacking"}
        return {"error": second.reason, "at": time.time(), "transient": second.transient}
    return {"error": first.reason, "at": time.time()}


_repack: bool | None = None
_repack_lock = threading.Lock()


def repack_allowed(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether llama.cpp's repacked weight kernels run on this CPU: decided once per llama.cpp
    build and CPU (in a child, on small quantized models), before the first in-process load."""
    global _repack
    with _repack_lock:
        if _repack is not None:
            return _repack
        key = f"kernels-{build_id()}"
        verdict = _recall(key)
        if verdict is None:
            result = _run_child(["kernels"], timeout)
            verdict = {"repack": result.ok or not result.crashed, "reason": result.reason,
                       "at": time.time()}
            _remember(key, verdict)
        _repack = bool(verdict["repack"])
        return _repack


# -- the child ---------------------------------------------------------------------------------

def _run_model(info: GGUFInfo, options: RunnerOptions) -> None:
    runner = LlamaRunner(info, options)
    try:
        fault = os.environ.get(FAULT_ENV)
        if fault and runner.repack:
            os.kill(os.getpid(), getattr(signal, fault))
        runner.self_test()
    finally:
        runner.close()


def _kernels() -> None:
    """Small models in each quantization llama.cpp repacks, loaded with repacking and run."""
    from localembed.engine.inspect import inspect_gguf
    from localembed.gguf.writer import write_kernel_check_model

    with tempfile.TemporaryDirectory(prefix="localembed-kernels-") as tmp:
        for dtype in ("q8_0", "q4_0"):
            path = write_kernel_check_model(Path(tmp) / f"{dtype}.gguf", dtype)
            _run_model(inspect_gguf(path), RunnerOptions(repack=True, workers=1, threads=1,
                                                         max_tokens=32))


def child_main(argv: list[str]) -> int:
    """The probe child: ``model INFO_JSON OPTIONS_JSON`` or ``kernels``."""
    try:
        if argv[:1] == ["model"] and len(argv) == 3:
            _run_model(GGUFInfo.from_json(argv[1]), RunnerOptions(**json.loads(argv[2])))
        elif argv == ["kernels"]:
            _kernels()
        else:
            print(f"usage: {PROBE_FLAG} model INFO OPTIONS | kernels", file=sys.stderr)
            return 2
    except ModelLoadError as exc:
        print(re.sub(r"\s+", " ", str(exc)), file=sys.stderr)
        return _EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
