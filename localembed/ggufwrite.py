"""Writing tensors into GGUF files: shared by the converter and the test-model writer.

Production code (``convert.py``) and the random-weight test models (``synthetic.py``) store
weights the same way; keeping that here means the converter never imports test code.
"""

from __future__ import annotations

import gguf
import numpy as np

DTYPES = ("f32", "f16", "q8_0")


def add_matrix(writer: gguf.GGUFWriter, name: str, data: np.ndarray, dtype: str) -> None:
    """Add a 2-D float32 array (shape ``(out, in)``) as f32, f16 or q8_0."""
    if dtype == "f32":
        writer.add_tensor(name, data.astype(np.float32))
    elif dtype == "f16":
        writer.add_tensor(name, data.astype(np.float16))
    elif dtype == "q8_0":
        qtype = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), qtype),
                          raw_dtype=qtype)
    else:
        raise ValueError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")


def file_type(dtype: str) -> int:
    """The ``general.file_type`` value llama.cpp reports for a model stored as ``dtype``."""
    return {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[dtype]

# localembed's own metadata keys. llama.cpp ignores keys it does not know; localembed reads
# these to honour what sentence-transformers configured for the model.
MAX_SEQ_LENGTH_KEY = "sentence_transformers.max_seq_length"
