"""GGUF files read (header.py: metadata without loading the model) and written (writer.py),
for the engine, the converter and the test models."""
