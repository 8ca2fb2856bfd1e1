"""The loopback server the remote tests, the example and the benchmarks read from."""

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes

import pytest
from support.localserver import ServerProcess

DATA = bytes(range(256)) * 40  # 10,240 bytes, each offset recognisable


@pytest.fixture
def served(tmp_path):
    (tmp_path / "blob.tif").write_bytes(DATA)
    with ServerProcess(tmp_path) as server:
        yield server


def get(url, range_=None, method="GET"):
    headers = {"Range": range_} if range_ else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


@pytest.mark.parametrize(
    ("range_", "expected", "content_range"),
    [
        ("bytes=100-199", DATA[100:200], "bytes 100-199/10240"),
        ("bytes=10000-", DATA[10000:], "bytes 10000-10239/10240"),
        ("bytes=-16", DATA[-16:], "bytes 10224-10239/10240"),
        ("bytes=10200-20000", DATA[10200:], "bytes 10200-10239/10240"),
    ],
)
def test_ranges_are_served_from_the_file(served, range_, expected, content_range):
    status, headers, body = get(f"{served.url}/blob.tif", range_)
    assert status == 206 and body == expected
    assert headers["Content-Range"] == content_range
    (logged,) = served.take()
    assert (logged.method, logged.range, logged.status, logged.sent) == (
        "GET",
        range_,
        206,
        len(expected),
    )


def test_several_ranges_come_back_as_multipart(served):
    status, headers, body = get(f"{served.url}/blob.tif", "bytes=0-9, 5000-5003")
    assert status == 206 and headers["Content-Type"].startswith("multipart/byteranges")
    message = message_from_bytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    parts = [(p["Content-Range"], p.get_payload(decode=True)) for p in message.get_payload()]
    assert parts == [("bytes 0-9/10240", DATA[:10]), ("bytes 5000-5003/10240", DATA[5000:5004])]


def test_whole_files_heads_missing_files_and_bad_ranges(served):
    assert get(f"{served.url}/blob.tif")[2] == DATA
    status, headers, body = get(f"{served.url}/blob.tif", method="HEAD")
    assert status == 200 and headers["Content-Length"] == "10240" and body == b""
    for url, range_, code in [
        (f"{served.url}/missing.tif", None, 404),
        (f"{served.url}/../blob.tif", None, 404),
        (f"{served.url}/blob.tif", "bytes=20000-", 416),
    ]:
        with pytest.raises(urllib.error.HTTPError) as error:
            get(url, range_)
        error.value.close()
        assert error.value.code == code
    assert [r.status for r in served.take()] == [200, 200, 404, 404, 416]


def test_latency_is_waited_per_request_and_overlaps_between_clients(tmp_path):
    (tmp_path / "blob.tif").write_bytes(DATA)
    with ServerProcess(tmp_path, latency=0.5) as server:
        started = time.monotonic()
        get(f"{server.url}/blob.tif", "bytes=0-9")
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            bodies = list(
                pool.map(lambda k: get(f"{server.url}/blob.tif", f"bytes={k}-{k}")[2], range(8))
            )
        # Eight clients wait together, not one after another (that would take 4 s).
        assert 0.5 <= time.monotonic() - started < 2.5
        assert bodies == [DATA[k : k + 1] for k in range(8)]
