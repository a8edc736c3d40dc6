"""Loaded models, by id: what the server asks for an engine.

One place decides which names mean which model (ids, ``default``, Ollama-style ``:latest``
tags, the OpenAI model names clients send out of habit) and loads models on first use, so that
HTTP views never touch files.
"""

from __future__ import annotations

import threading

from localembed.engine import Engine, RunnerOptions
from localembed.store import ModelNotFound, resolve

# Clients written for OpenAI often keep their model name; they get the default model.
OPENAI_NAMES = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")


class Registry:
    """The engines the server has loaded; thread-safe."""

    def __init__(self, default_model: str | None = None,
                 options: RunnerOptions | None = None) -> None:
        self.options = options or RunnerOptions()
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        model_id, path = resolve(default_model, allow_path=True)
        self.default_id = model_id
        self._engines[model_id] = Engine(path, model_id=model_id, options=self.options)

    @property
    def default(self) -> Engine:
        return self._engines[self.default_id]

    def canonical(self, name: str | None) -> str:
        """The model id a request's model name refers to."""
        if name is None or name in ("", "default") or name in OPENAI_NAMES:
            return self.default_id
        return name.removesuffix(":latest")

    def get(self, name: str | None) -> Engine:
        """The engine for ``name``, loading an installed model on first use."""
        model_id = self.canonical(name)
        engine = self._engines.get(model_id)
        if engine is not None:
            return engine
        with self._lock:
            if model_id not in self._engines:
                model_id, path = resolve(model_id)  # ModelNotFound for unknown/unsafe names
                self._engines[model_id] = Engine(path, model_id=model_id, options=self.options)
            return self._engines[model_id]

    def loaded(self) -> list[Engine]:
        return list(self._engines.values())

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()


__all__ = ["ModelNotFound", "OPENAI_NAMES", "Registry"]
