"""The weight types the converter writes (writer.py), apart so that the command line can offer
them without importing numpy and gguf."""

DTYPES = ("f32", "f16", "q8_0")
