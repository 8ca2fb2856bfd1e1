"""Damaged files in, geochips errors or good indexes out: fuzzing the two file readers.

The saved index (``ChipIndex.load``) and the scene header reader (``ChipIndex.build``) read
bytes that may be truncated, flipped or edited. Whatever hypothesis does to a real file,
the outcome must be an :class:`IndexFileError` (resp. ``SceneReadError``) or an index whose
every window lies within the documented bounds and reads; never another exception, never
a hang (each example has a deadline).
"""

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning

from geochips import ChipDataset, ChipIndex, IndexFileError
from geochips.errors import GeochipsError, GeochipsWarning, SceneReadError, TileAlignmentWarning
from geochips.scene_json import DTYPES, MAX_PIXELS
from geochips.testing import write_scene

FAST = settings(
    max_examples=60,
    deadline=3000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=600)

FLIP = st.tuples(st.integers(0, 2**40), st.integers(1, 255))  # (offset, xor mask)
FLIPS = st.lists(FLIP, min_size=1, max_size=8)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([10**400, -1, 0, 2**31, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ARROW_TYPES = st.sampled_from(
    [
        pa.int8(),
        pa.int16(),
        pa.int32(),
        pa.int64(),
        pa.uint32(),
        pa.uint64(),
        pa.float32(),
        pa.float64(),
        pa.bool_(),
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.null(),
        pa.list_(pa.int32()),
        pa.list_(pa.float32(), 3),
        pa.struct([("a", pa.int32())]),
        pa.timestamp("ms"),
    ]
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real index of 3 scenes (projected with nodata, GCP-only, float lon/lat) and its file."""
    folder = tmp_path_factory.mktemp("fuzz")
    gcps = [
        GroundControlPoint(row=r, col=c, x=-60.0 + c * 0.001, y=-10.0 - r * 0.001)
        for r in (0, 30)
        for c in (0, 40)
    ]
    sources = [
        write_scene(folder / "utm.tif", height=40, width=50, nodata=0),
        write_scene(folder / "gcps.tif", height=30, width=40, count=1, gcps=gcps),
        write_scene(
            folder / "geo.tif", height=32, width=32, count=2, dtype="float32", crs="EPSG:4326"
        ),
    ]
    with warnings.catch_warnings():  # a 16/12 grid over 16 px tiles, on purpose
        warnings.simplefilter("ignore", TileAlignmentWarning)
        index = ChipIndex.build(sources, size=16, stride=12, edge="shift", sign=None)
    index = index.with_columns(
        cloud=np.linspace(0, 1, len(index)).astype(np.float32),
        label=np.array(["ab", "c"] * (len(index) // 2) + ["x"] * (len(index) % 2)),
        tag=np.array([None if i % 3 else f"t{i}" for i in range(len(index))], dtype=object),
        embedding=np.arange(len(index) * 2, dtype=np.float64).reshape(-1, 2),
    )
    target = folder / "index.parquet"
    index.save(target)
    assert {s.georef for s in index.scenes} == {"transform", "gcps"}
    return index, target, folder


def check_loaded(index):
    """Every window of a loaded index lies within the documented bounds, and one reads."""
    assert index.edge in ("drop", "shift", "pad", None)
    for scene in index.scenes:
        assert scene.height >= 1 and scene.width >= 1 and scene.count >= 1
        assert scene.dtype in DTYPES and len(scene.band_counts) == len(scene.hrefs) >= 1
    if not len(index):
        return
    s = index.column("scene").astype(np.int64)
    assert s.min() >= 0 and s.max() < len(index.scenes)
    r, c, h, w = (
        index.column(k).astype(np.int64) for k in ("row_off", "col_off", "height", "width")
    )
    heights = np.array([x.height for x in index.scenes])[s]
    widths = np.array([x.width for x in index.scenes])[s]
    assert (h >= 1).all() and (w >= 1).all() and (np.abs(r) <= MAX_PIXELS).all()
    if index.edge in ("drop", "shift"):
        assert (r >= 0).all() and (c >= 0).all()
        assert (r + h <= heights).all() and (c + w <= widths).all()
    else:
        assert (
            (r < heights).all() and (r + h > 0).all() and (c < widths).all() and (c + w > 0).all()
        )
    try:
        with warnings.catch_warnings():
            # A header damaged into no georeferencing is read as such (georef "none"); the
            # reader (not the header reader) still lets rasterio warn about it.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            sample = ChipDataset(index)[0]
    except GeochipsError:
        return  # e.g. an edited href that names no file: a clear error, at read time
    assert tuple(sample["image"].shape[1:]) == (int(h[0]), int(w[0]))


def note(outcome):
    """Count an outcome in hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(outcome)


def load_or_fail(path, named=True):
    """Load ``path``: an index within bounds, or None for an IndexFileError naming the file.

    ``named``: the error must come from a named check, not from the loader's safety net
    (which turns an unforeseen exception into IndexFileError); byte flips may instead
    break the Parquet decoder itself.
    """
    try:
        index = ChipIndex.load(path, sign=None)
    except IndexFileError as exc:
        message = str(exc)
        assert str(path) in message
        assert not named or "unexpected" not in message, message
        note("IndexFileError: " + message[len(str(path)) + 3 :][:60])
        return None
    note("loaded")
    check_loaded(index)
    return index


def flipped(data, flips):
    out = bytearray(data)
    for offset, mask in flips:
        out[offset % len(out)] ^= mask
    return bytes(out)


# -- the saved index ---------------------------------------------------------------------


def _fuzz_bytes(saved, flips, cut):
    _, target, folder = saved
    data = target.read_bytes()
    damaged = flipped(data, flips)
    if cut is not None:
        damaged = damaged[: cut % (len(damaged) + 1)]
    path = folder / "bytes.parquet"
    path.write_bytes(damaged)
    load_or_fail(path, named=False)


@FAST
@given(flips=FLIPS, cut=st.none() | st.integers(0, 2**40))
def test_flipped_or_truncated_index_files(saved, flips, cut):
    _fuzz_bytes(saved, flips, cut)


@pytest.mark.slow
@SLOW
@given(flips=FLIPS, cut=st.none() | st.integers(0, 2**40))
def test_flipped_or_truncated_index_files_at_length(saved, flips, cut):
    _fuzz_bytes(saved, flips, cut)


def _pick_path(data, node):
    """Draw a path from the root to some node of decoded JSON."""
    path = []
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 3)) > 0:
        key = data.draw(
            st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
        )
        path.append(key)
        node = node[key]
    return path


def _mutate(data, meta):
    path = _pick_path(data, meta)
    action = data.draw(st.sampled_from(["replace", "delete", "nest", "huge", "nan", "wrap"]))
    if not path:
        return data.draw(JSON) if action == "replace" else [meta]
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    else:
        parent[key] = {
            "replace": lambda: data.draw(JSON),
            "nest": lambda: [[[[[parent[key]]]]]],
            "huge": lambda: 10**300,
            "nan": lambda: float("nan"),
            "wrap": lambda: [parent[key]],
        }[action]()
    return meta


def _fuzz_meta(saved, data):
    _, target, folder = saved
    table = pq.read_table(target)
    meta = json.loads(table.schema.metadata[b"geochips"])
    for _ in range(data.draw(st.integers(1, 3))):
        meta = _mutate(data, meta)
    raw = json.dumps(meta).encode()
    if data.draw(st.booleans()):
        depth = data.draw(st.integers(1, 200_000))
        raw = b"[" * depth + raw + b"]" * depth
    path = folder / "meta.parquet"
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"geochips": raw}), path)
    loaded = load_or_fail(path)
    if loaded is not None and loaded.scenes == saved[0].scenes:
        assert loaded.chip_ids == saved[0].chip_ids


@FAST
@given(data=st.data())
def test_edited_metadata_json(saved, data):
    _fuzz_meta(saved, data)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_edited_metadata_json_at_length(saved, data):
    _fuzz_meta(saved, data)


def _retyped(column, target, data):
    n = len(column)
    choice = data.draw(st.sampled_from(["cast", "nulls", "value"]))
    if choice == "cast":
        try:
            cast = column.cast(target, safe=False)
            cast.validate(full=True)  # binary cast to string keeps bytes that are not UTF-8
            return cast
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return pa.nulls(n, target)
    if choice == "nulls":
        mask = np.zeros(n, bool)
        mask[data.draw(st.integers(0, max(n - 1, 0)))] = True
        return pa.array(column.to_pylist(), column.type, mask=mask)
    values = column.to_pylist()
    if pa.types.is_integer(column.type) and n:
        # Any value the column's type holds (an int8 column cannot be given 128).
        info = np.iinfo(column.type.to_pandas_dtype())
        low, high = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
        values[data.draw(st.integers(0, n - 1))] = data.draw(st.integers(low, high))
    return pa.array(values, column.type)


def _fuzz_columns(saved, data):
    _, target, folder = saved
    table = pq.read_table(target)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(table.column_names))
        position = table.column_names.index(name)
        action = data.draw(st.sampled_from(["retype", "drop", "duplicate"]))
        if action == "drop":
            table = table.remove_column(position)
        elif action == "duplicate":
            table = table.append_column(name, table.column(position))
        else:
            column = table.column(position).combine_chunks()
            table = table.set_column(position, name, _retyped(column, data.draw(ARROW_TYPES), data))
    path = folder / "columns.parquet"
    pq.write_table(table, path)
    load_or_fail(path)


@FAST
@given(data=st.data())
def test_columns_rewritten_with_other_arrow_types(saved, data):
    _fuzz_columns(saved, data)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_columns_rewritten_with_other_arrow_types_at_length(saved, data):
    _fuzz_columns(saved, data)


def test_the_undamaged_file_loads_exactly(saved):
    index, target, _ = saved
    back = load_or_fail(target)
    assert back is not None and back.chip_ids == index.chip_ids and back.scenes == index.scenes


# -- the header reader -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cog")
    path = write_scene(
        folder / "scene.tif",
        height=256,
        width=256,
        count=2,
        layout="cog",
        blocksize=128,
        overviews=[2],
        nodata=0,
    )
    with open(path, "rb") as f:
        return Original(f.read()), folder


class Original(bytes):
    """The bytes of the undamaged file, with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


def build_or_fail(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeochipsWarning)  # a damaged size may leave no chip
        try:
            index = ChipIndex.build([str(path)], size=64, sign=None, workers=1)
        except SceneReadError as exc:
            note(type(exc).__name__)
            return None
    note("built")
    check_loaded(index)
    return index


@pytest.mark.parametrize(
    "content", [b"", b"not a tiff at all", b"II*\x00", b"MM\x00*" + b"\xff" * 64]
)
def test_headers_of_files_that_are_not_tiffs(tmp_path, content):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    assert build_or_fail(path) is None


def _fuzz_header(cog, flips, cut):
    data, folder = cog
    header = 2048  # the IFDs and tag values of this COG lie at its start
    damaged = flipped(data, [(o % header, m) for o, m in flips])
    if cut is not None:
        damaged = damaged[: cut % (len(damaged) + 1)]
    path = folder / "damaged.tif"
    path.write_bytes(damaged)
    build_or_fail(path)


@FAST
@given(flips=st.lists(FLIP, max_size=6), cut=st.none() | st.integers(0, 2**40))
def test_headers_of_damaged_cogs(cog, flips, cut):
    _fuzz_header(cog, flips, cut)


@pytest.mark.slow
@SLOW
@given(flips=st.lists(FLIP, max_size=6), cut=st.none() | st.integers(0, 2**40))
def test_headers_of_damaged_cogs_at_length(cog, flips, cut):
    _fuzz_header(cog, flips, cut)
