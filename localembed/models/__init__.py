"""Model files: the catalog, the installed store, pulls from the hub, imports and conversion,
the built-in starter, which model answers when none is named, and the one description of a
model that every face shows."""
