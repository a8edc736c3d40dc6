"""A package's one submodule, imported without running the package's ``__init__``.

Two dependencies import far more in their ``__init__`` than localembed uses at start:
``llama_cpp`` imports its high-level ``Llama`` (jinja2 chat templates, a disk cache,
multiprocessing: 0.09 s of every server start), and ``gguf`` its reader, writer, vocabulary and
metadata modules (yaml, sentencepiece: 0.05 s) where the engine needs only its constants
(benchmarks/startup_bench.py). ``partial_package`` registers the package without running its
``__init__``, imports the one submodule and puts that module's public names on the package, as
the ``__init__``'s ``from .submodule import *`` would. Anything else asked of the package runs
the real ``__init__`` then, so code that imports it later still gets the whole package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import sys
import threading
from types import ModuleType

_lock = threading.RLock()


def partial_package(package: str, submodule: str) -> ModuleType:
    """``package`` with ``submodule``'s names on it (the whole package if already imported)."""
    with _lock:
        loaded = sys.modules.get(package)
        if loaded is not None:
            return loaded
        spec = importlib.util.find_spec(package)
        if spec is None or spec.loader is None:
            raise ImportError(f"{package} is not installed")
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            part = importlib.import_module(f"{package}.{submodule}")
        except BaseException:
            del sys.modules[package]
            raise
        exported = getattr(part, "__all__", None) or [n for n in vars(part) if n[0] != "_"]
        module.__dict__.update({name: getattr(part, name) for name in exported})
        # Its version without running it, where the source can be read (not in a frozen app:
        # there ``__version__`` runs the whole ``__init__``, as anything else does).
        with contextlib.suppress(Exception):
            source = spec.loader.get_source(package) or ""  # type: ignore[union-attr]
            found = re.search(r'^__version__\s*=\s*["\']([^"\']+)', source, re.MULTILINE)
            if found:
                module.__version__ = found.group(1)

        def rest(name: str) -> object:
            """Run the package's own ``__init__`` the first time something else is asked."""
            with _lock:
                if module.__dict__.pop("__getattr__", None) is not None:
                    spec.loader.exec_module(module)  # type: ignore[union-attr]
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

        module.__getattr__ = rest  # type: ignore[attr-defined]
        return module
