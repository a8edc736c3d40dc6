"""Where localembed keeps its files, what it can be told, and the network it listens on: the
ground floor, imported by every layer and importing none."""
