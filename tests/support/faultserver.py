"""A loopback HTTP Range server that injects faults, for tests of remote reads.

:class:`FaultServer` is :class:`support.localserver.FileServer` (Range requests, HEAD, the
request log) with a list of :class:`Fault` rules consulted before each request: the first
rule that matches the request and has attempts left decides how it is answered. A rule can
answer with an HTTP status (503/429 with or without ``Retry-After``, 404, 500, 403), reset
the connection mid-body (RST: ``SO_LINGER`` 0), send fewer bytes than its Content-Length,
stall after the headers, trickle the body at a given rate, or ignore the Range header (200
and the whole file). Rules can target only the pixel reads of a scene, so that a test
indexes it cleanly first: ``min_offset`` matches ranged GETs that start at or beyond an
offset (the header sits in GDAL's first 16 KB chunk), ``skip`` lets the first matching
requests through.

It runs in a child process (:class:`FaultServerProcess`), like ``ServerProcess``: GDAL
holds the GIL while it opens a file, so a server thread in the reading process could not
answer it, and a child process is killed at teardown whatever a client is still waiting
for. The rules are replaced at run time through ``POST /__faults__``.

**Usage**::

    from support.faultserver import Fault, FaultServerProcess

    with FaultServerProcess(folder) as server:
        index = geochips.ChipIndex.build(f"{server.url}/scene.tif", size=256)
        server.inject(Fault("reset", times=1, min_offset=16384))
        ...
        [r for r in server.requests() if r.fault]   # the requests a rule answered
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as the server's own process: `support` is importable from the tests folder.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fnmatch  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any, Literal  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from support.localserver import (  # noqa: E402
    FileServer,
    Request,
    ServerProcess,
    _Control,
)

FaultKind = Literal["status", "reset", "short", "stall", "slow", "ignore-range"]

FAULTS_PATH = "/__faults__"
MAX_STALL = 60.0
"""Seconds a stalled answer holds its connection at most, whatever its rule asks."""

_START = re.compile(r"bytes=(\d+)-")


@dataclass
class Fault:
    """A rule: how to answer the requests it matches, and how many times.

    Args:
        kind: ``"status"`` answers ``status`` (with ``Retry-After: retry_after`` if given);
            ``"reset"`` sends the headers and ``body_bytes`` of the body, then resets the
            connection (RST); ``"short"`` does the same but closes it cleanly (FIN), fewer
            bytes than its Content-Length said; ``"stall"`` sends the headers and
            ``body_bytes``, then holds the connection ``stall`` seconds (at most
            :data:`MAX_STALL`, less if the client leaves or the server stops) and closes it;
            ``"slow"`` sends the whole answer at ``rate`` bytes/s; ``"ignore-range"`` answers
            a ranged GET with 200 and the whole file.
        path: ``fnmatch`` pattern of the paths it applies to.
        methods: the HTTP methods it applies to.
        min_offset: if set, only GETs with a Range starting at or after this offset.
        max_offset: if set, only GETs with a Range starting at or before this offset.
        skip: matching requests let through before the rule applies.
        times: how many times it applies (``None``: every time).
        body_bytes: body bytes sent before a reset, short close or stall (default: half
            of the body for reset and short, none for a stall).
    """

    kind: FaultKind
    path: str = "*"
    methods: tuple[str, ...] = ("GET",)
    min_offset: int | None = None
    max_offset: int | None = None
    skip: int = 0
    times: int | None = 1
    status: int = 503
    retry_after: float | None = None
    body_bytes: int | None = None
    stall: float = MAX_STALL
    rate: int = 100_000
    seen: int = 0
    """Requests matched so far (those skipped included)."""
    applied: int = 0
    """Requests the rule answered so far."""

    def matches(self, method: str, path: str, range_: str | None) -> bool:
        """Return whether the rule applies to this request (ignoring its counts)."""
        if method not in self.methods or not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.min_offset is None and self.max_offset is None:
            return True
        start = _START.match(range_ or "")
        if start is None:
            return False
        offset = int(start.group(1))
        low = self.min_offset if self.min_offset is not None else 0
        return low <= offset and (self.max_offset is None or offset <= self.max_offset)

    def describe(self) -> str:
        """A short name for the request log: ``"status 503"``, ``"reset"``..."""
        return f"status {self.status}" if self.kind == "status" else self.kind


@dataclass(frozen=True)
class Logged(Request):
    """One request the server answered, and the rule that answered it (if any)."""

    fault: str | None = None


@dataclass
class _Plan:
    fault: Fault
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    payload: bytes = b""


class FaultServer(FileServer):
    """Serve ``root`` on 127.0.0.1 like :class:`FileServer`, answering per :class:`Fault` rules."""

    def __init__(self, root: str | os.PathLike[str], *, latency: float = 0.0) -> None:
        super().__init__(root, latency=latency)
        self._server.RequestHandlerClass = _FaultHandler
        self.faults: list[Fault] = []
        self.stopping = threading.Event()
        """Set at shutdown: stalled answers end at once."""

    def record(self, request: Request) -> None:
        """Add ``request`` to the log (as answered by no rule unless it is a :class:`Logged`)."""
        if not isinstance(request, Logged):
            request = Logged(**request.__dict__)
        super().record(request)

    def set_faults(self, faults: list[Fault]) -> None:
        """Replace the rules."""
        with self._lock:
            self.faults = faults

    def pick(self, method: str, path: str, range_: str | None) -> Fault | None:
        """Return the rule that answers this request, counting it, or ``None``."""
        with self._lock:
            for fault in self.faults:
                if fault.times is not None and fault.applied >= fault.times:
                    continue
                if not fault.matches(method, path, range_):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    return None
                fault.applied += 1
                return fault
        return None

    def plan(self, fault: Fault, method: str, path: str, query: str, headers: Any) -> _Plan:
        """Return what to send for a request ``fault`` answers."""
        if fault.kind == "status":
            extra = {"Content-Type": "text/plain"}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            return _Plan(fault, fault.status, extra, f"injected {fault.status}\n".encode())
        if fault.kind == "ignore-range":
            unranged = {k: v for k, v in headers.items() if k.lower() != "range"}
            status, answer, payload = self.respond(method, path, query, unranged)
            return _Plan(fault, status, answer, payload)
        status, answer, payload = self.respond(method, path, query, headers)
        return _Plan(fault, status, answer, payload)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (from another thread)."""
        self._server.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Stop serving and release stalled answers."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class _FaultHandler(_Control):
    server: Any

    def do_GET(self) -> None:
        if urlsplit(self.path).path == FAULTS_PATH:
            owner: FaultServer = self.server.owner
            with owner._lock:
                body = json.dumps([asdict(f) for f in owner.faults]).encode()
            return self._reply(200, body)
        return super().do_GET()

    def do_POST(self) -> None:
        if urlsplit(self.path).path != FAULTS_PATH:
            return self._reply(405, b"")
        length = int(self.headers.get("Content-Length", 0))
        rules = json.loads(self.rfile.read(length) or b"[]")
        faults = [Fault(**{**r, "methods": tuple(r.get("methods", ("GET",)))}) for r in rules]
        self.server.owner.set_faults(faults)
        return self._reply(200, b"[]")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, *, body: bool) -> None:
        owner: FaultServer = self.server.owner
        target = urlsplit(self.path)
        range_ = self.headers.get("Range")
        fault = owner.pick(self.command, target.path, range_)
        if fault is None:
            return super()._serve(body=body)
        if owner.latency:
            time.sleep(owner.latency)
        plan = owner.plan(fault, self.command, target.path, target.query, self.headers)
        payload = plan.payload if body else b""
        cut = len(payload)
        if fault.kind in ("reset", "short"):
            cut = fault.body_bytes if fault.body_bytes is not None else len(payload) // 2
        elif fault.kind == "stall":
            cut = fault.body_bytes or 0
        cut = min(cut, len(payload))
        # Recorded before answering, as FileServer does: a test that sees a failure finds
        # the request that caused it in the log.
        owner.record(
            Logged(
                self.command,
                target.path,
                target.query,
                range_,
                plan.status,
                cut,
                fault.describe(),
            )
        )
        self.send_response(plan.status)
        for key, value in plan.headers.items():
            self.send_header(key, value)
        if "Content-Length" not in plan.headers:
            self.send_header("Content-Length", str(len(plan.payload)))
        self.end_headers()
        if fault.kind == "slow":
            self._trickle(payload, fault.rate)
        else:
            self.wfile.write(payload[:cut])
        if fault.kind == "stall":
            self._hold(min(fault.stall, MAX_STALL), owner.stopping)
        if fault.kind == "reset":
            self._reset()
        elif fault.kind in ("short", "stall"):
            self._close()

    def _trickle(self, payload: bytes, rate: int) -> None:
        step = max(rate // 20, 1)  # 20 writes a second
        for start in range(0, len(payload), step):
            self.wfile.write(payload[start : start + step])
            time.sleep(step / rate)

    def _hold(self, seconds: float, stopping: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while not stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.2)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return  # the client closed its end: nobody is waiting any more
                except OSError:
                    return
                time.sleep(0.2)  # the client sent more (a pipelined request): keep holding

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN. The socket
        # closes only once rfile (a makefile of it) is closed too.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._close()

    def _close(self) -> None:
        self.close_connection = True
        self.rfile.close()
        self.connection.close()


class FaultServerProcess(ServerProcess):
    """Run a :class:`FaultServer` in a child process; change its rules from this one.

    **Usage**::

        with FaultServerProcess(folder) as server:
            server.inject(Fault("status", status=503, times=2, min_offset=16384))
            ...
            server.faults()[0].applied   # 2
    """

    def __enter__(self) -> FaultServerProcess:
        command = [sys.executable, __file__, self.root, "--latency", str(self.latency)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def _call(self, method: str, path: str, data: bytes | None = None) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with opener.open(request, timeout=10) as response:
            return json.load(response)

    def inject(self, *faults: Fault) -> None:
        """Replace the rules by ``faults`` (their counts start at zero)."""
        rules = [{**asdict(f), "seen": 0, "applied": 0} for f in faults]
        self._call("POST", FAULTS_PATH, json.dumps(rules).encode())

    def clear(self) -> None:
        """Remove every rule: the server answers normally."""
        self.inject()

    def faults(self) -> list[Fault]:
        """The rules in place, with their counts (``seen``, ``applied``)."""
        return [
            Fault(**{**r, "methods": tuple(r["methods"])}) for r in self._call("GET", FAULTS_PATH)
        ]

    def requests(self) -> list[Logged]:  # type: ignore[override]
        """Every request recorded since the last :meth:`take`."""
        return [Logged(**r) for r in self._log()["requests"]]

    def take(self) -> list[Logged]:  # type: ignore[override]
        """Return the requests recorded so far and start a new log."""
        return [Logged(**r) for r in self._log(reset=True)["requests"]]

    def faulted(self) -> list[Logged]:
        """The requests recorded since the last :meth:`take` that a rule answered."""
        return [r for r in self.requests() if r.fault]


def _serve(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Serve a folder with faults; print the port.")
    parser.add_argument("root")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FaultServer(args.root, latency=args.latency)
    print(server.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1:])
