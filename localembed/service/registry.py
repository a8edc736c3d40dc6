"""Loaded models, by id: what the server asks for an engine.

One place decides which names mean which model (ids, catalog aliases, ``default``, Ollama-style
``:latest`` tags, the OpenAI model names clients send out of habit), loads models on first use,
switches the default (and remembers it), chooses the reranker for a request that names none,
and unloads models, always letting requests already queued finish.

A server loads its default model in the background (``background=True``): it listens and
answers ``/health`` ("loading") at once, and a request for the default model waits for the
load instead of being refused, so the first vector comes as soon as llama.cpp can give it.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time

from localembed.config.paths import home_dir
from localembed.config.settings import ServerConfig, save_setting
from localembed.engine import Engine, ModelLoadError, RunnerOptions
from localembed.engine.cache import MIB, VectorCache
from localembed.models.defaults import default_model_id, reranker_id
from localembed.models.store import ModelNotFound, StoreError, resolve


def release_freed_memory() -> None:
    """Hand memory freed by an unloaded model back to the OS (glibc keeps it otherwise, and a
    server that switches models would look like it leaks)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows, musl): nothing to do
        return
    with contextlib.suppress(AttributeError):
        libc.malloc_trim(0)


# Clients written for OpenAI often keep their model name; they get the default model.
OPENAI_NAMES = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")

# How long closing waits for a background load to end (a load cannot be interrupted; the probe
# child that checks a new file has its own time limit).
LOAD_WAIT = 120.0


class Registry:
    """The engines the server has loaded; thread-safe."""

    def __init__(self, default_model: str | None = None,
                 options: RunnerOptions | None = None, keep_alive: float = 0,
                 cache: VectorCache | None = None, background: bool = False) -> None:
        self.options = options or RunnerOptions()
        # One cache for every model this registry loads (its keys name the model file).
        self.cache = cache if cache is not None else VectorCache()
        self.keep_alive = keep_alive  # seconds a non-default model may idle; 0 = forever
        self._engines: dict[str, Engine] = {}
        self._used: dict[str, float] = {}
        self._keep: dict[str, float] = {}  # per-model keep-alive set by a request (Ollama's)
        self._lock = threading.RLock()
        self._switch = threading.Lock()
        # An unknown name is refused here, at once; only the load itself runs in the background.
        model_id, path = resolve(default_model_id(default_model), allow_path=True)
        self.default_id = model_id
        self._loaded = threading.Event()  # set once the first default's load has ended
        self._failure: Exception | None = None
        if background:
            threading.Thread(target=self._load_first, args=(model_id, path),
                             name="localembed-load", daemon=True).start()
        else:
            self._engines[model_id] = self._open(model_id, path)
            self._loaded.set()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        if keep_alive > 0:
            self._start_reaper()

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="localembed-keepalive",
                                                daemon=True)
                self._reaper.start()

    def _open(self, model_id: str, path: object) -> Engine:
        return Engine(path, model_id=model_id, options=self.options,  # type: ignore[arg-type]
                      safe_load=True, cache=self.cache)

    def _load_first(self, model_id: str, path: object) -> None:
        try:
            engine = self._open(model_id, path)
        except Exception as exc:  # kept for whoever waits: wait_ready() raises it
            self._failure = exc
        else:
            with self._lock:
                self._engines[model_id] = engine
        finally:
            self._loaded.set()

    @classmethod
    def from_config(cls, config: ServerConfig, background: bool = False) -> Registry:
        """The registry a server, the desktop app or ``serve`` runs with ``config``."""
        return cls(config.model, RunnerOptions(threads=config.threads,
                                               gpu_layers=config.gpu_layers),
                   keep_alive=config.keep_alive, cache=cache_from_config(config),
                   background=background)

    @property
    def ready(self) -> bool:
        """The default model is loaded (False while the first one loads, and after it failed
        until another default is set)."""
        return self._loaded.is_set() and self.default_id in self._engines

    @property
    def failure(self) -> Exception | None:
        """Why the first default model could not be loaded, while no other default is set."""
        return None if self.ready or not self._loaded.is_set() else self._failure

    def wait_ready(self, timeout: float | None = None) -> Engine:
        """The default engine once the first load has ended; raises what made it fail."""
        if not self._loaded.wait(timeout):
            raise TimeoutError(f"{self.default_id} is still loading")
        if self._failure is not None:
            raise ModelLoadError(str(self._failure))
        return self.default

    @property
    def default(self) -> Engine:
        if not self._loaded.is_set():
            self.wait_ready()
        with self._lock:
            engine = self._engines.get(self.default_id)
        if engine is None:
            raise ModelLoadError(str(self._failure or f"{self.default_id} is not loaded"))
        return engine

    def canonical(self, name: str | None) -> str:
        """The model id a request's model name refers to."""
        if name is None or name in ("", "default") or name in OPENAI_NAMES:
            return self.default_id
        return name.removesuffix(":latest")

    def get(self, name: str | None) -> Engine:
        """The engine for ``name``, loading an installed model on first use."""
        with self._lock:  # the default's id and engine are read together: a switch never
            model_id = self.canonical(name)  # leaves a request holding the old default's name
            engine = self._engines.get(model_id)
        if engine is None and model_id == self.default_id:
            # The server's model is still loading (wait, do not refuse) or failed (say why).
            engine = self.wait_ready()
        if engine is None:
            engine = self.load(model_id)
        self._used[engine.id] = time.monotonic()
        return engine

    def load(self, name: str) -> Engine:
        with self._lock:
            try:
                model_id, path = resolve(name)
            except StoreError as exc:
                raise ModelNotFound(str(exc)) from exc
            if model_id not in self._engines:
                self._engines[model_id] = self._open(model_id, path)
            self._used[model_id] = time.monotonic()
            return self._engines[model_id]

    def reranker(self, name: str | None) -> Engine:
        """The engine for a rerank request's model; without a name, a reranker chosen by
        ``models.defaults.reranker_id`` (the default model if it is one, else a loaded one,
        else an installed one: TEI's clients send no model). With none installed, the default
        model, which the engine refuses naming the kind of model needed."""
        if name is not None:
            return self.get(name)
        return self.get(self.reranker_id() or self.default_id)

    def reranker_id(self) -> str | None:
        """The reranker a request naming none goes to, without loading it; None when no
        reranker is installed."""
        with self._lock:
            preferred = [self.default_id, *self._engines]
        return reranker_id(preferred)

    def set_default(self, name: str, persist: bool = False,
                    unload_previous: bool = True) -> Engine:
        """Serve ``name`` as the default: loaded first (a model that fails to load changes
        nothing), then remembered in config.json when ``persist`` (a failed write changes
        nothing either), then switched; the old default is unloaded after finishing what was
        queued for it."""
        with self._switch:  # one switch at a time: no model is left loaded between two
            engine = self.load(self.canonical(name))
            if persist:
                save_setting("model", engine.id)
            with self._lock:
                previous, self.default_id = self.default_id, engine.id
            if unload_previous and previous != engine.id:
                with contextlib.suppress(StoreError):
                    self.unload(previous)
            return engine

    def unload(self, name: str) -> bool:
        """Free a model; requests already queued for it are still served. The default model
        stays (switch the default first)."""
        model_id = self.canonical(name)
        with self._lock:
            if model_id == self.default_id:
                raise StoreError(f"{model_id} is the default model; switch the default first")
            engine = self._engines.pop(model_id, None)
            self._used.pop(model_id, None)
            self._keep.pop(model_id, None)
        if engine is None:
            return False
        engine.close(drain=True)
        release_freed_memory()
        return True

    def keep(self, model_id: str, seconds: float) -> None:
        """Keep ``model_id`` loaded ``seconds`` after its last use (< 0: until unloaded; 0:
        unload now, once its queued work is done). The default model always stays."""
        if model_id == self.default_id:
            return
        if seconds == 0:
            with contextlib.suppress(StoreError):
                self.unload(model_id)
            return
        self._keep[model_id] = seconds
        if seconds > 0:
            self._start_reaper()

    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._engines

    def loaded(self) -> list[Engine]:
        return list(self._engines.values())

    def _reap(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for model_id, used in list(self._used.items()):
                limit = self._keep.get(model_id, self.keep_alive)
                if model_id != self.default_id and limit > 0 and now - used > limit:
                    with contextlib.suppress(StoreError):
                        self.unload(model_id)

    def close(self) -> None:
        self._stop.set()
        self._loaded.wait(LOAD_WAIT)  # an engine still loading is closed too, not leaked
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
        self.cache.close()


def cache_from_config(config: ServerConfig) -> VectorCache:
    """The embedding cache ``cache_mb`` and ``cache_disk_mb`` describe (the disk tier in the
    home's ``cache/vectors.sqlite``, shared by every process on that home)."""
    disk = home_dir() / "cache" / "vectors.sqlite" if config.cache_disk_mb else None
    return VectorCache(config.cache_mb * MIB, disk, config.cache_disk_mb * MIB)


__all__ = ["ModelNotFound", "OPENAI_NAMES", "Registry", "cache_from_config"]
