"""The HTTP server around the flask app: waitress, with deadlines, eviction and a graceful stop.

Waitress alone has three gaps a local server meets in practice:

- Its idle timeout restarts on every byte, so a client dripping one header byte every few
  seconds holds a connection forever, and at the connection limit waitress stops accepting:
  a thousand such clients lock everyone out, ``/health`` included. Here a request's headers
  must arrive within ``HEADER_DEADLINE`` of its first byte and its body within
  ``BODY_DEADLINE`` (a late request is answered 408 and closed), and at the limit the oldest
  connection that is not being served (preferring those that never completed a request) makes
  room for the new one, so a new client always gets in.
- Its ``run()`` ends on KeyboardInterrupt by closing every connection, requests in flight
  included. ``Server.run`` drives the loop itself: ``stop()`` (from a signal handler or
  another thread) closes the listening sockets, lets requests already received finish for up
  to ``GRACE_PERIOD``, then closes the rest.
- It polls with ``select()``, which cannot watch a descriptor past 1023; ``poll()`` is used,
  and the soft limit on open files is raised to the hard one so a thousand sockets fit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

import msgspec
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error

from localembed.server.errors import APIError, body_too_large, error_body

log = logging.getLogger("localembed.server")

# How long requests already received may take to finish once the server is told to stop.
GRACE_PERIOD = 10.0
# From a request's first byte to the end of its headers (a browser sends them in one packet).
HEADER_DEADLINE = 10.0
# From the end of a request's headers to the end of its body: a full 32 MiB body at 1 MB/s.
BODY_DEADLINE = 120.0
# How often connections are checked against the deadlines and the idle timeout.
MAINTENANCE_INTERVAL = 2
CONNECTION_LIMIT = 1000
IDLE_TIMEOUT = 60
# The longest the loop sleeps before it notices a stop request made from a signal handler.
LOOP_TIMEOUT = 0.25
ACCEPTS_PER_TURN = 64


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


class JSONErrorTask(ErrorTask):
    """Waitress's own errors (a body too large, a malformed or late request) as JSON, in the
    shape of the request's dialect."""

    def execute(self) -> None:
        error = self.request.error
        path = (getattr(self.request, "path", "") or "").split("?")[0]
        status = error.code
        if status == 413:
            refusal = body_too_large()
        else:
            code = "request_timeout" if status == 408 else "bad_request"
            refusal = APIError(status, f"{error.reason}: {error.body}", code=code)
        body = json.dumps(msgspec.to_builtins(error_body(path, refusal))).encode()
        self.status = f"{status} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class OneSendTask(WSGITask):
    """A response whose headers and body leave in one ``send``: waitress writes them
    separately, and with its ``send_bytes`` of 1 each write is a system call and a TCP segment
    of its own, which the client reads apart (measured with 32 clients of one short text: the
    load generator's CPU per request fell from 204-234 us to 177 us; llama-server's 161-173)."""

    def write(self, data: bytes) -> None:
        if self.wrote_header or not isinstance(data, bytes) or not data:
            super().write(data)
            return
        channel = self.channel
        held: list[bytes] = []
        channel.write_soon = held.append  # type: ignore[method-assign]  # the header, the body
        try:
            super().write(data)
        finally:
            del channel.write_soon
        if held:
            channel.write_soon(b"".join(held))


class Channel(HTTPChannel):
    """A connection that knows when its unfinished request started and when its headers ended,
    so a request that arrives too slowly can be answered 408 whatever its byte rate."""

    error_task_class = JSONErrorTask
    task_class = OneSendTask
    request_started: float | None = None  # monotonic time of the unfinished request's 1st byte
    headers_ended: float | None = None
    served = 0  # requests answered on this connection
    timed_out = False

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        now = time.monotonic()
        current = self.request
        if current is None:
            self.request_started = self.headers_ended = None
        else:
            if current is not before or self.request_started is None:
                self.request_started, self.headers_ended = now, None
            if current.headers_finished and self.headers_ended is None:
                self.headers_ended = now
        return result

    def readable(self) -> bool:
        return not self.timed_out and super().readable()

    def service(self) -> None:
        super().service()
        self.served += 1

    def overdue(self, now: float) -> bool:
        """The unfinished request has missed its deadline (headers, or else body)."""
        if self.timed_out or self.request_started is None:
            return False
        if self.headers_ended is None:
            return now - self.request_started > HEADER_DEADLINE
        return now - self.headers_ended > BODY_DEADLINE

    def time_out(self) -> None:
        """Answer the late request with a 408 and close (on the loop's thread)."""
        with self.requests_lock:
            request, self.request = self.request, None
            self.timed_out = True
            if request is None or self.will_close or self.close_when_flushed:
                self.will_close = True
                return
            phase = "headers" if self.headers_ended is None else "body"
            limit = HEADER_DEADLINE if phase == "headers" else BODY_DEADLINE
            request.error = RequestTimeout(f"the request's {phase} did not arrive within "
                                           f"{limit:g} s")
            request.completed = True
            self.requests.append(request)
            if len(self.requests) == 1:
                self.server.add_task(self)

    def in_flight(self) -> bool:
        """A request is being received, queued or served, or its answer is being sent."""
        return bool(self.requests or self.total_outbufs_len or self.request is not None)


def _channels(socket_map: dict) -> list[Channel]:
    return [c for c in list(socket_map.values()) if isinstance(c, Channel)]


class Listener(TcpWSGIServer):
    """A listening socket that enforces the deadlines and makes room at the connection limit
    instead of no longer accepting."""

    channel_class = Channel
    _evicting = False

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # waitress's idle timeout
        clock = time.monotonic()
        for channel in _channels(self._map):
            if channel.server is self and channel.overdue(clock):
                channel.time_out()

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            self._evicting = False
            return True
        return self._eviction_candidate() is not None

    def _eviction_candidate(self) -> Channel | None:
        """The oldest connection not being served, one that never completed a request first."""
        idle = [c for c in _channels(self._map) if not (
            c.requests or c.total_outbufs_len or c.will_close or c.close_when_flushed)]
        return min(idle, key=lambda c: (c.served > 0, c.creation_time), default=None)

    def handle_accept(self) -> None:
        # Several per wake-up: each turn of the loop polls every connection, so a burst of a
        # thousand would otherwise cost a thousand turns.
        for _ in range(ACCEPTS_PER_TURN):
            full = len(self._map) >= self.adj.connection_limit
            if (full and self._eviction_candidate() is None) or not self.accept_one():
                break
            self._make_room()

    def _make_room(self) -> None:
        while len(self._map) > self.adj.connection_limit:
            victim = self._eviction_candidate()
            if victim is None:
                break
            if not self._evicting:
                self._evicting = True
                log.warning("%d connections open: closing the oldest ones that are not being "
                            "served to make room", self.adj.connection_limit)
            victim.handle_close()

    def accept_one(self) -> bool:
        """Accept one pending connection; False when none is waiting."""
        try:
            pair = self.accept()
            if pair is None:
                return False
            conn, addr = pair
            self.set_socket_options(conn)
        except OSError:
            # A connection reset before it was accepted, or out of descriptors: the loop goes
            # on, and waitress logs it the same way.
            if self.adj.log_socket_errors:
                self.logger.warning("server accept() threw an exception", exc_info=True)
            return False
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)
        return True


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: the common default of 1024 would
    not hold CONNECTION_LIMIT sockets beside the process's own files."""
    try:
        import resource
    except ImportError:  # Windows: no such limit on sockets
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    # An unlimited hard limit is not a valid soft one on every kernel: take a generous number.
    target = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Server:
    """One or more listeners (a host name may have several addresses) sharing one socket map,
    one pool of HTTP threads and one loop, with a graceful stop."""

    def __init__(self, app: Callable, **settings: object) -> None:
        raise_open_file_limit()
        self.adj = Adjustments(**settings)
        self.map: dict = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.listeners: list[Listener] = []
        try:
            for sockinfo in self.adj.listen:
                self.listeners.append(Listener(app, self.map, dispatcher=self.dispatcher,
                                               adj=self.adj, sockinfo=sockinfo))
        except BaseException:
            wasyncore.close_all(self.map, ignore_all=True)
            raise
        self.dispatcher.set_thread_count(self.adj.threads)
        first = self.listeners[0]
        self.effective_host, self.effective_port = first.effective_host, first.effective_port
        self._deadline: float | None = None  # set by stop(): when the grace period ends
        self._running = False
        self._done = threading.Event()

    def stop(self, grace: float = GRACE_PERIOD) -> None:
        """Stop accepting and finish what was received within ``grace`` seconds; returns at
        once. Safe in a signal handler (it only sets a value and writes one byte to a pipe),
        and a second call can only shorten the grace period."""
        deadline = time.monotonic() + grace
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
        for listener in self.listeners:
            with contextlib.suppress(OSError, AttributeError):  # already closed
                listener.trigger._physical_pull()  # wake the loop now

    def run(self) -> None:
        """Serve until ``stop()``, then stop gracefully; returns when everything is closed."""
        self._running = True
        try:
            while self._deadline is None and self.map:
                wasyncore.loop(timeout=LOOP_TIMEOUT, map=self.map, use_poll=True, count=1)
            self._drain()
        finally:
            self._close_all()
            self._running = False
            self._done.set()

    def close(self) -> None:
        """Stop now (no grace) and wait for ``run()`` to finish, or close at once if it is not
        running."""
        if self._running:
            self.stop(grace=0)
            self._done.wait(GRACE_PERIOD)
        else:
            self._close_all()

    def _drain(self) -> None:
        """Accept what already waits in the backlog (those clients have sent their requests),
        close the listening sockets, then serve until nothing is in flight or the grace period
        ends, closing each idle connection as it becomes idle."""
        for listener in self.listeners:
            for _ in range(self.adj.connection_limit):
                if not listener.accept_one():
                    break
            listener.accepting = False
            wasyncore.dispatcher.close(listener)  # its trigger stays to wake the loop
        while time.monotonic() < (self._deadline or 0.0):
            wasyncore.loop(timeout=0.05, map=self.map, use_poll=True, count=1)
            busy = False
            for channel in _channels(self.map):
                if channel.in_flight():
                    busy = True
                elif not channel.will_close:
                    channel.handle_close()  # idle: no further request will be served on it
            if not busy:
                return

    def _close_all(self) -> None:
        self.dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self.map, ignore_all=True)
        for listener in self.listeners:
            listener.accepting = False


def make_waitress_server(app: Callable, host: str, port: int, http_threads: int,
                         max_body_bytes: int) -> Server:
    """The server localembed runs: sized for local use that survives slow and idle clients
    (idle or dripping connections cost a socket, never an HTTP thread); bodies over the limit
    are refused from their Content-Length before any byte is spooled; a request lookahead lets
    a request know when its client has gone, so its queued work is dropped."""
    return Server(app, host=host, port=port, threads=http_threads,
                  max_request_body_size=max_body_bytes, connection_limit=CONNECTION_LIMIT,
                  channel_timeout=IDLE_TIMEOUT, cleanup_interval=MAINTENANCE_INTERVAL,
                  channel_request_lookahead=4, asyncore_use_poll=True,
                  ident="localembed", clear_untrusted_proxy_headers=True)
