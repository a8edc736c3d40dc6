"""Collections: a corpus read, chunked, embedded, stored and searched on this machine."""
