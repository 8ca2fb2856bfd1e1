"""The fault-injecting server (tests/support/faultserver.py) delivers each fault as specified.

Raw ``http.client`` and socket checks, no GDAL: a reset really resets, a short body really is
short, a stall really stalls and is released when the server stops, an ignored Range really
comes back as 200 with the whole file.
"""

from __future__ import annotations

import http.client
import socket
import time

import pytest
from support.faultserver import MAX_STALL, Fault, FaultServerProcess

DATA = bytes(range(256)) * 40  # 10,240 bytes, each offset recognisable


@pytest.fixture
def server(tmp_path):
    (tmp_path / "blob.tif").write_bytes(DATA)
    (tmp_path / "other.tif").write_bytes(DATA)
    with FaultServerProcess(tmp_path) as served:
        yield served


def get(server, path="/blob.tif", range_=None, method="GET", timeout=10.0):
    """Return ``(status, headers, body)``; the body is read to the end (or the error)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(method, path, headers={"Range": range_} if range_ else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_get(server, range_="bytes=0-", timeout=10.0):
    """Send a GET on a raw socket; return the socket and the bytes up to the end of headers."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.sendall(f"GET /blob.tif HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: {range_}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the headers ended: {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return sock, head.decode(), rest


def content_length(head: str) -> int:
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == "content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


def test_a_healthy_server_serves_ranges_and_logs_no_fault(server):
    status, headers, body = get(server, range_="bytes=100-199")
    assert (status, body, headers["Content-Range"]) == (206, DATA[100:200], "bytes 100-199/10240")
    (logged,) = server.take()
    assert (logged.method, logged.range, logged.status, logged.fault) == (
        "GET",
        "bytes=100-199",
        206,
        None,
    )


@pytest.mark.parametrize("code", [503, 429])
def test_a_status_fault_answers_n_times_then_the_file(server, code):
    server.inject(Fault("status", status=code, times=2, retry_after=1))
    for _ in range(2):
        status, headers, _ = get(server, range_="bytes=0-9")
        assert status == code and headers["Retry-After"] == "1"
    assert get(server, range_="bytes=0-9")[::2] == (206, DATA[:10])
    assert [(r.status, r.fault) for r in server.take()] == [
        (code, f"status {code}"),
        (code, f"status {code}"),
        (206, None),
    ]
    (rule,) = server.faults()
    assert (rule.seen, rule.applied) == (2, 2)


def test_status_faults_without_retry_after_and_persistent(server):
    server.inject(Fault("status", status=404, times=None, path="/blob.tif"))
    for _ in range(5):
        status, headers, _ = get(server, range_="bytes=0-9")
        assert status == 404 and "Retry-After" not in headers
    assert get(server, "/other.tif", range_="bytes=0-9")[0] == 206  # another path is healthy
    server.inject(Fault("status", status=500, times=None))
    assert {get(server, range_="bytes=0-9")[0] for _ in range(3)} == {500}


def test_a_403_once_then_ok(server):
    server.inject(Fault("status", status=403))
    assert get(server, range_="bytes=0-9")[0] == 403
    assert get(server, range_="bytes=0-9")[0] == 206


def test_faults_can_target_reads_beyond_an_offset_or_after_k_requests(server):
    server.inject(Fault("status", status=500, times=None, min_offset=5000, max_offset=8000))
    assert get(server, range_="bytes=0-4999")[0] == 206  # "the header"
    assert get(server, method="HEAD")[0] == 200
    assert get(server)[0] == 200  # no Range: not a tile read
    assert get(server, range_="bytes=5000-5099")[0] == 500
    assert get(server, range_="bytes=8192-8291")[0] == 206
    server.inject(Fault("status", status=503, skip=2, times=1))
    assert [get(server, range_="bytes=0-9")[0] for _ in range(4)] == [206, 206, 503, 206]
    server.inject(Fault("status", status=503, methods=("HEAD",)))
    assert get(server, range_="bytes=0-9")[0] == 206
    assert get(server, method="HEAD")[0] == 503


def test_a_reset_sends_part_of_the_body_then_rst(server):
    server.inject(Fault("reset", body_bytes=3000))
    sock, head, body = raw_get(server)
    with sock:
        assert head.startswith("HTTP/1.1 206") and content_length(head) == len(DATA)
        with pytest.raises(ConnectionResetError):
            while True:
                chunk = sock.recv(65536)
                assert chunk, "closed with FIN, not reset"
                body += chunk
    assert body == DATA[:3000]  # whatever arrived before the RST is the start of the file
    (logged,) = server.take()
    assert (logged.fault, logged.sent) == ("reset", 3000)


def test_a_reset_reaches_http_client_as_a_reset(server):
    server.inject(Fault("reset"))  # half of the body by default
    with pytest.raises(ConnectionResetError):
        get(server, range_="bytes=0-")
    assert get(server, range_="bytes=0-")[2] == DATA  # once only


def test_a_short_body_ends_cleanly_before_its_content_length(server):
    server.inject(Fault("short", body_bytes=4000))
    sock, head, body = raw_get(server, "bytes=1000-9999")
    with sock:
        assert head.startswith("HTTP/1.1 206") and content_length(head) == 9000
        while chunk := sock.recv(65536):  # FIN: recv returns b"", no reset
            body += chunk
    assert body == DATA[1000:5000]
    with pytest.raises(http.client.IncompleteRead):
        server.inject(Fault("short"))
        get(server, range_="bytes=0-")


def test_a_stall_sends_the_headers_then_nothing_and_ends_with_the_server(tmp_path):
    (tmp_path / "blob.tif").write_bytes(DATA)
    with FaultServerProcess(tmp_path) as server:
        server.inject(Fault("stall", body_bytes=100))
        sock, head, body = raw_get(server, timeout=1.0)
        assert head.startswith("HTTP/1.1 206") and content_length(head) == len(DATA)
        while len(body) < 100:
            body += sock.recv(65536)
        assert body == DATA[:100]
        with pytest.raises(TimeoutError):  # a stall: nothing more comes
            sock.recv(65536)
        sock.settimeout(10.0)
        started = time.monotonic()
    # The server process is gone: the stalled client learns it at once, not after MAX_STALL.
    with sock:
        try:
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass
    assert time.monotonic() - started < MAX_STALL / 2


def test_a_stall_gives_up_after_its_own_bound(server):
    server.inject(Fault("stall", stall=1.0))
    sock, head, body = raw_get(server, timeout=20.0)
    with sock:
        started = time.monotonic()
        assert body + sock.recv(65536) == b""  # closed after the stall, nothing sent
        assert 0.8 <= time.monotonic() - started < 15
    assert get(server, range_="bytes=0-9")[2] == DATA[:10]


def test_a_stall_ends_when_its_client_leaves(server):
    server.inject(Fault("stall", times=None))
    for _ in range(3):
        sock, head, _ = raw_get(server)
        sock.close()
    time.sleep(0.5)  # the server threads notice the closed sockets (they poll every 0.2 s)
    server.clear()
    assert get(server, range_="bytes=0-9")[2] == DATA[:10]


def test_a_slow_answer_trickles_the_whole_body(server):
    server.inject(Fault("slow", rate=20_000))
    sock, head, body = raw_get(server, "bytes=0-")
    with sock:
        started = time.monotonic()
        arrivals = 0
        while len(body) < len(DATA):
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
            arrivals += 1
        elapsed = time.monotonic() - started
    assert body == DATA
    # 10 KB at 20 kB/s: about half a second, in many small writes (a lower bound only).
    assert elapsed >= 0.3 and arrivals > 3


def test_an_ignored_range_returns_200_and_the_whole_file(server):
    server.inject(Fault("ignore-range", times=None))
    status, headers, body = get(server, range_="bytes=100-199")
    assert status == 200 and body == DATA and "Content-Range" not in headers
    assert int(headers["Content-Length"]) == len(DATA)
    (logged,) = server.take()
    assert (logged.status, logged.sent, logged.fault) == (200, len(DATA), "ignore-range")


def test_faults_are_replaced_and_cleared_at_run_time(server):
    server.inject(Fault("status", status=500, times=None))
    assert get(server, range_="bytes=0-9")[0] == 500
    server.inject(Fault("status", status=404, times=None))
    assert get(server, range_="bytes=0-9")[0] == 404
    server.clear()
    assert get(server, range_="bytes=0-9")[0] == 206 and server.faults() == []
    assert [r.status for r in server.take()] == [500, 404, 206]
    assert server.requests() == []
