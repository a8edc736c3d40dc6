"""A stand-in for the Hugging Face Hub on 127.0.0.1, for real huggingface_hub downloads.

It serves the two requests ``hf_hub_download`` makes (HEAD for metadata, GET for content) at
``/{repo}/resolve/{revision}/{filename}``, with the hub's headers (ETag/X-Linked-Etag = sha256,
X-Linked-Size, X-Repo-Commit) and byte ranges, and can cut a transfer off partway to test resume.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class StandInHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.advertised_sha: dict[tuple[str, str], str] = {}
        self.bytes_sent = 0
        self.gets: list[str | None] = []  # the Range header of each GET
        self.cut_after: int | None = None  # cut the next GET after this many bytes
        self.slow: float = 0.0  # seconds to sleep per 64 KiB chunk
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> tuple[tuple[str, str], bytes] | None:
                m = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
                if not m:
                    return None
                key = (m.group(1), m.group(3))
                data = hub.files.get(key)
                return (key, data) if data is not None else None

            def _headers(self, key: tuple[str, str], data: bytes, status: int,
                         start: int = 0) -> None:
                sha = hub.advertised_sha.get(key) or hashlib.sha256(data).hexdigest()
                self.send_response(status)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def _missing(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                found = self._file()
                if found is None:
                    return self._missing()
                self._headers(*found, 200)

            def do_GET(self) -> None:  # noqa: N802
                found = self._file()
                if found is None:
                    return self._missing()
                key, data = found
                range_header = self.headers.get("Range")
                hub.gets.append(range_header)
                start = 0
                if range_header:
                    m = re.match(r"bytes=(\d+)-", range_header)
                    start = int(m.group(1)) if m else 0
                self._headers(key, data, 206 if start else 200, start)
                with hub.lock:
                    cut, hub.cut_after = hub.cut_after, None
                body = data[start:]
                limit = len(body) if cut is None else min(cut, len(body))
                sent = 0
                import time

                while sent < limit:
                    chunk = body[sent:min(limit, sent + 65536)]
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(chunk)
                    with hub.lock:
                        hub.bytes_sent += len(chunk)
                    if hub.slow:
                        time.sleep(hub.slow)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, filename: str, data: bytes) -> str:
        self.files[(repo, filename)] = data
        return hashlib.sha256(data).hexdigest()

    def __enter__(self) -> StandInHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
