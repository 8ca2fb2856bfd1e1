"""Loopback HTTP servers that stand in for cloud storage: for tests, examples and demos.

Real servers on 127.0.0.1, standard library only, that GDAL reads COGs from as it would
from blob storage. They run in a child process (:class:`ServerProcess`): in the reading
process itself they would deadlock, since GDAL holds the GIL while it waits for an HTTP
answer. The request log is read back through ``GET /__log__``.

**Usage**::

    from support.localserver import ServerProcess

    with ServerProcess("folder/with/cogs") as server:
        index = geochips.ChipIndex.build(f"{server.url}/scene.tif", size=256)
        server.take()   # [Request(method="HEAD", ...), Request(method="GET", range=...)]

:class:`FileServer` serves a folder with HTTP Range support (single and multiple ranges),
logs every request (method, path, range, status, bytes sent), can wait a fixed latency
before each answer (in each request's own thread, so concurrent clients overlap their
waits, as with an object store) and can act as a plain HTTP proxy target: a request whose
target is an absolute URL (``GET http://host/path``, what curl sends to a proxy) is served
from the folder by its path, so hrefs on any host, such as
``http://<account>.blob.core.windows.net/<container>/x.tif``, reach it through
``GDAL_HTTP_PROXY`` and the ``proxies=`` of ``requests``.

:class:`SasService` adds what Planetary Computer's SAS API does: ``GET
/api/sas/v1/token/<account>/<container>`` returns ``{"msft:expiry": ..., "token": ...}``
with a short lifetime, and blob reads answer 403 (as Azure does) once the token in their
query string has expired or was never issued.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    method: str
    path: str
    """Path without query string."""
    query: str
    range: str | None
    status: int
    sent: int
    """Body bytes sent."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are recorded in server.requests, not printed

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        target = urlsplit(self.path)
        path, query = target.path, target.query
        owner = self.server.owner
        if owner.latency:
            time.sleep(owner.latency)
        status, headers, payload = owner.respond(self.command, path, query, self.headers)
        sent = len(payload) if body else 0
        # Recorded before answering: a client that has its answer finds its request in the
        # log (recorded after, a test reading the log at once could miss the last request
        # and count it with the next ones).
        owner.record(Request(self.command, path, query, self.headers.get("Range"), status, sent))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many readers connect at once (32 header threads, 8 per batch)
    owner: FileServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # GDAL drops connections it no longer needs; that is not the server's failure.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


_RANGE = re.compile(r"(\d*)-(\d*)")


class FileServer:
    """Serve ``root`` on 127.0.0.1 with Range support, recording every request.

    Run it with :class:`ServerProcess`.
    """

    def __init__(self, root: str | os.PathLike[str], *, latency: float = 0.0) -> None:
        self.root = Path(root)
        self.latency = latency
        """Seconds each request waits before it is answered."""
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Control)
        self._server.owner = self

    @property
    def port(self) -> int:
        """The port it listens on (chosen by the system)."""
        return int(self._server.server_address[1])

    def record(self, request: Request) -> None:
        """Add ``request`` to the log."""
        with self._lock:
            self.requests.append(request)

    def authorize(self, path: str, query: str) -> tuple[int, bytes] | None:
        """Return an error status and body to refuse a file request, or ``None``."""
        return None

    def respond(
        self, method: str, path: str, query: str, headers: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """Return the status, headers and body answering a request for ``path``."""
        refused = self.authorize(path, query)
        if refused is not None:
            return refused[0], {"Content-Type": "application/xml"}, refused[1]
        file = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return 404, {}, b"not found"
        size = file.stat().st_size
        kind = "application/json" if file.suffix == ".json" else "image/tiff"
        spec = headers.get("Range")
        if method == "HEAD":  # the size, without reading the file
            return (
                200,
                {"Content-Type": kind, "Accept-Ranges": "bytes", "Content-Length": str(size)},
                b"",
            )
        if not spec:
            return 200, {"Content-Type": kind, "Accept-Ranges": "bytes"}, file.read_bytes()
        ranges = []
        for part in spec.removeprefix("bytes=").split(","):
            match = _RANGE.fullmatch(part.strip())
            if match is None:
                return 416, {}, b""
            start_text, end_text = match.groups()
            if start_text:
                start = int(start_text)
                end = min(int(end_text), size - 1) if end_text else size - 1
            else:
                start, end = max(size - int(end_text), 0), size - 1
            if start >= size or end < start:
                return 416, {"Content-Range": f"bytes */{size}"}, b""
            ranges.append((start, end))
        with file.open("rb") as f:  # only the bytes asked for: scenes may be large

            def read(start: int, end: int) -> bytes:
                f.seek(start)
                return f.read(end - start + 1)

            if len(ranges) == 1:
                start, end = ranges[0]
                return (
                    206,
                    {
                        "Content-Type": kind,
                        "Accept-Ranges": "bytes",
                        "Content-Range": f"bytes {start}-{end}/{size}",
                    },
                    read(start, end),
                )
            boundary = "geochipsboundary"
            body = b""
            for start, end in ranges:
                body += (
                    (
                        f"--{boundary}\r\nContent-Type: {kind}\r\n"
                        f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
                    ).encode()
                    + read(start, end)
                    + b"\r\n"
                )
        body += f"--{boundary}--\r\n".encode()
        return 206, {"Content-Type": f"multipart/byteranges; boundary={boundary}"}, body


class SasService(FileServer):
    """A Planetary Computer SAS token API and a blob store that checks its tokens.

    Tokens live ``lifetime`` seconds. Every token issued is remembered by its signature;
    a blob request whose ``sig`` was never issued, or whose ``se`` has passed, gets 403.
    With ``refuse_after``, tokens are refused that many seconds after they were issued
    although their ``se`` says otherwise (a revoked token, or clocks that disagree).
    """

    TOKEN_PATH = "/api/sas/v1/token"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lifetime: float = 30.0,
        refuse_after: float | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__(root, latency=latency)
        self.lifetime = lifetime
        self.refuse_after = refuse_after
        self.issued: dict[str, datetime] = {}
        self.denied = 0

    def respond(
        self, method: str, path: str, query: str, headers: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer token requests, then file requests (checking their token)."""
        if path.startswith(self.TOKEN_PATH):
            return self._token()
        return super().respond(method, path, query, headers)

    def _token(self) -> tuple[int, dict[str, str], bytes]:
        now = datetime.now(timezone.utc)
        # Fractional lifetimes matter in tests; SAS times have whole seconds, so the
        # expiry is rounded down and the token is never valid longer than promised.
        expiry = (now + timedelta(seconds=self.lifetime)).replace(microsecond=0)
        sig = "SECRET" + secrets.token_hex(12)
        refused_at = expiry
        if self.refuse_after is not None:
            refused_at = min(expiry, now + timedelta(seconds=self.refuse_after))
        with self._lock:
            self.issued[sig] = refused_at
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        token = (
            f"st={now.strftime(stamp)}&se={expiry.strftime(stamp)}&sp=rl&sv=2024-05-04"
            f"&sr=c&skoid=abc&sktid=def&sig={sig}"
        )
        body = json.dumps({"msft:expiry": expiry.strftime(stamp), "token": token})
        return 200, {"Content-Type": "application/json"}, body.encode()

    def authorize(self, path: str, query: str) -> tuple[int, bytes] | None:
        """Refuse (403) a request whose token was never issued or has expired."""
        params = parse_qs(query)
        sig = params.get("sig", [""])[0]
        with self._lock:
            expiry = self.issued.get(sig)
        if expiry is None or datetime.now(timezone.utc) >= expiry:
            with self._lock:
                self.denied += 1
            return 403, (
                b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed'
                b"</Code><Message>Server failed to authenticate the request.</Message></Error>"
            )
        return None


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until it is true (for tests that cross a token expiry)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


LOG_PATH = "/__log__"


class _Control(_Handler):
    """Serves ``/__log__`` (the request log and issued tokens as JSON) besides the files."""

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        if target.path != LOG_PATH:
            return super().do_GET()
        owner = self.server.owner
        with owner._lock:
            payload = {
                "requests": [r.__dict__ for r in owner.requests],
                "issued": list(getattr(owner, "issued", {})),
                "denied": getattr(owner, "denied", 0),
            }
            if "reset=1" in target.query:
                owner.requests = []
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ServerProcess:
    """Run a file server in a child process and read its request log from this one.

    A :class:`FileServer`, or a :class:`SasService` when ``lifetime`` is given; ``latency``
    seconds are waited before each answer.

    **Usage**::

        with ServerProcess(folder) as server:
            rasterio.open(f"{server.url}/scene.tif")
            server.take()   # [Request(method="HEAD", ...), ...]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lifetime: float | None = None,
        refuse_after: float | None = None,
        latency: float = 0.0,
    ) -> None:
        self.root = os.fspath(root)
        self.lifetime = lifetime
        self.refuse_after = refuse_after
        self.latency = latency
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> ServerProcess:
        command = [sys.executable, __file__, self.root, "--latency", str(self.latency)]
        if self.lifetime is not None:
            command += ["--lifetime", str(self.lifetime)]
        if self.refuse_after is not None:
            command += ["--refuse-after", str(self.refuse_after)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def proxy(self) -> str:
        """Value for ``GDAL_HTTP_PROXY`` that routes every http:// href to this server."""
        return f"127.0.0.1:{self.port}"

    @property
    def sas_url(self) -> str:
        """Value for ``PC_SDK_SAS_URL``."""
        return f"{self.url}{SasService.TOKEN_PATH}"

    def _log(self, reset: bool = False) -> dict[str, Any]:
        query = "?reset=1" if reset else ""
        # A direct connection, whatever proxy the environment names.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}{LOG_PATH}{query}", timeout=10) as response:
            log: dict[str, Any] = json.load(response)
        return log

    def requests(self) -> list[Request]:
        """Every request recorded since the last :meth:`take`."""
        return [Request(**r) for r in self._log()["requests"]]

    def take(self) -> list[Request]:
        """Return the requests recorded so far and start a new log."""
        return [Request(**r) for r in self._log(reset=True)["requests"]]

    def tokens(self) -> list[str]:
        """Signatures the token service issued (secrets that must never leak)."""
        return list(self._log()["issued"])

    def denied(self) -> int:
        """How many blob requests were refused with 403."""
        return int(self._log()["denied"])

    def token_calls(self) -> int:
        """How many tokens were issued (calls to the SAS API)."""
        return len(self.tokens())


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Serve a folder on 127.0.0.1; print the port.")
    parser.add_argument("root")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, help="serve as a SasService")
    parser.add_argument("--refuse-after", type=float)
    args = parser.parse_args(argv)
    owner: FileServer = (
        FileServer(args.root, latency=args.latency)
        if args.lifetime is None
        else SasService(
            args.root,
            lifetime=args.lifetime,
            refuse_after=args.refuse_after,
            latency=args.latency,
        )
    )
    print(owner.port, flush=True)
    owner._server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1:])
