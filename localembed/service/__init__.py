"""The service: the one execute path every face runs its requests through (execute.py), over
the registry of loaded models (registry.py)."""
