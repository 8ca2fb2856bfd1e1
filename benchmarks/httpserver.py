"""A loopback HTTP file server with Range support, injected latency and request counting.

Stands in for blob storage: every request (HEAD or GET, ranged or not) sleeps ``latency``
seconds before answering, in its own thread, so concurrent clients overlap their waits as
they do against a real object store. ``/__stats`` returns what was served, per path, as
JSON (requests, bytes, 404s, and the ``(start, length)`` of each response); ``/__reset``
clears it.

A path ``/alias/<anything>/<name>`` serves ``<root>/<name>``: many distinct URLs for one
file, so header reads of "many scenes" are not merged by GDAL's per-URL cache.

    python benchmarks/httpserver.py --root benchmarks/.data --latency 0.02
    # prints "PORT <n>" once listening on 127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Stats:
    """Counters shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.per_path: dict[str, dict[str, int]] = self._empty()

    @staticmethod
    def _empty() -> dict[str, dict[str, int]]:
        return defaultdict(
            lambda: {"requests": 0, "bytes": 0, "not_found": 0, "ranges": 0, "spans": []}
        )

    def reset(self) -> None:
        with self.lock:
            self.per_path = self._empty()

    def add(self, path: str, start: int, nbytes: int, found: bool, ranged: bool) -> None:
        with self.lock:
            entry = self.per_path[path]
            entry["spans"].append((start, nbytes))
            entry["requests"] += 1
            entry["bytes"] += nbytes
            entry["not_found"] += 0 if found else 1
            entry["ranges"] += 1 if ranged else 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            per_path = {k: {**v, "spans": list(v["spans"])} for k, v in self.per_path.items()}
        total = {
            key: sum(v[key] for v in per_path.values())
            for key in ("requests", "bytes", "not_found", "ranges")
        }
        return {"total": total, "per_path": per_path}


def make_handler(root: Path, latency: float, stats: Stats) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as object stores allow

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/__stats":
                self._json(stats.snapshot())
                return
            if self.path == "/__reset":
                stats.reset()
                self._json({"ok": True})
                return
            self._serve(body=True)

        def _json(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, body: bool) -> None:
            if latency:
                time.sleep(latency)
            path = self.path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            name = parts[-1] if parts and parts[0] == "alias" else "/".join(parts)
            file = (root / name).resolve()
            if root not in file.parents or not file.is_file():
                stats.add(path, 0, 0, found=False, ranged=False)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = file.stat().st_size
            start, end = 0, size - 1
            header = self.headers.get("Range")
            match = RANGE.match(header.strip()) if header else None
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                else:  # suffix range: the last n bytes
                    start, end = max(size - int(match.group(2)), 0), size - 1
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            length = max(end - start + 1, 0)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "image/tiff")
            self.end_headers()
            # Counted before the body goes out, so a client holding its answer always
            # finds it in the stats.
            stats.add(path, start, length if body else 0, found=True, ranged=match is not None)
            if body:
                with open(file, "rb") as f:
                    f.seek(start)
                    self.wfile.write(f.read(length))

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A threaded server that takes a client closing its connection in stride."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = QuietServer(
        ("127.0.0.1", args.port), make_handler(args.root.resolve(), args.latency, Stats())
    )
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        os._exit(0)


if __name__ == "__main__":
    main()
