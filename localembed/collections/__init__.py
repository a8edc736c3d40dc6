"""Collections: a corpus read, chunked, embedded, stored and searched on this machine."""

# Documents per embedding call of a Ray run (``localembed.ray``; each call's chunks are one
# part), here so that the command line's help can say it without importing the pipeline.
# Smaller calls cost throughput (on 2 cores, 300 documents: 44 s with 16 a call, 33 s with 32,
# when an actor ran one call at a time).
DOCUMENTS_PER_CALL = 32
