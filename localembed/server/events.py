"""Server-sent events of long work (a pull, an index run): its progress on every change until
it ends.

Event streams hold an HTTP thread each: at most MAX_STREAMS at once, each for at most
STREAM_SECONDS (EventSource clients reconnect by themselves), and each ends as soon as its client
has gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from flask import Response, stream_with_context

from localembed.server.body import client_gone
from localembed.server.errors import APIError

MAX_STREAMS = 4
STREAM_SECONDS = 60.0
_streams = threading.BoundedSemaphore(MAX_STREAMS)


def progress_events(changed: threading.Condition, snapshot: Callable[[], str],
                    finished: Callable[[], bool], poll_path: str) -> Response:
    """A text/event-stream response: ``snapshot()`` (JSON) whenever it changes (``changed`` is
    notified), until ``finished()``; ``poll_path`` is what to poll instead when too many
    streams are open."""
    if not _streams.acquire(blocking=False):
        raise APIError(503, f"at most {MAX_STREAMS} event streams at once; poll "
                            f"GET {poll_path} instead", code="too_many_streams",
                       headers={"Retry-After": "5"})
    gone = client_gone()
    deadline = time.monotonic() + STREAM_SECONDS

    def stream() -> Iterator[str]:
        try:
            last = None
            while time.monotonic() < deadline and not (gone is not None and gone()):
                with changed:
                    now = snapshot()
                    if now == last:
                        changed.wait(timeout=0.5)
                        now = snapshot()
                if now != last:
                    yield f"data: {now}\n\n"
                    last = now
                if finished():
                    return
        finally:
            _streams.release()

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
