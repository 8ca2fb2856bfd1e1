"""The saved index: GeoParquet that other tools read, and an exact, code-free round trip."""

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.warp import transform as warp_transform
from support.oracles import assert_same_index as assert_same
from support.scenes import scene_header

from geochips import ChipIndex, IndexFileError, estimate_valid, spatial_split
from geochips.errors import InvalidParameterError
from geochips.io import index_meta, index_save
from geochips.sample_data import path as sample_path
from geochips.sources import SceneSource

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def index():
    """Real scenes of every kind: projected, antimeridian, GCP-only, multi-band with nodata."""
    sources = [
        str(DATA / "mosaic_cog1_ov0.tif"),
        str(DATA / "cog_dateline.tif"),
        str(sample_path("cog_gcps.tif")),
        str(sample_path("RGB.byte.tif")),
    ]
    built = estimate_valid(ChipIndex.build(sources, size=128, stride=64))
    return spatial_split(built, {"train": 0.8, "test": 0.2}, seed=0)["train"]


def test_round_trip_is_exact(index, tmp_path):
    extra = index.with_columns(
        cloud=np.linspace(0, 1, len(index)),
        tile=np.array([None if i % 3 == 0 else f"t{i}" for i in range(len(index))], dtype=object),
        code=np.arange(len(index), dtype=np.int64),
        flag=np.arange(len(index)) % 2 == 0,
        label=np.array(["a", "bb"] * (len(index) // 2) + ["a"] * (len(index) % 2)),
        embedding=np.arange(len(index) * 3, dtype=np.float32).reshape(-1, 3),
    )
    target = tmp_path / "chips.parquet"
    extra.save(target)
    back = ChipIndex.load(target)
    assert_same(extra, back)
    assert back.signer is None
    # The loaded index works like the original: lookups, selection, another save.
    assert back[extra.chip_ids[5]].window == extra[5].window
    back.save(tmp_path / "again.parquet")
    assert_same(back, ChipIndex.load(tmp_path / "again.parquet"))


def test_empty_index_round_trips(index, tmp_path):
    empty = index[[]]
    empty.save(tmp_path / "empty.parquet")
    assert_same(empty, ChipIndex.load(tmp_path / "empty.parquet"))


def test_the_file_is_geoparquet_that_pyarrow_reads(index, tmp_path):
    target = tmp_path / "chips.parquet"
    index.save(target)
    table = pq.read_table(target)
    assert table.num_rows == len(index)
    for name in (
        "chip_id",
        "scene_id",
        "hrefs",
        "assets",
        "overview_level",
        "row_off",
        "col_off",
        "height",
        "width",
        "split",
        "valid_fraction",
        "crs",
        "geometry",
    ):
        assert name in table.column_names
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"].startswith("1.") and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB"
    assert set(column["geometry_types"]) == {"Polygon", "MultiPolygon"}
    assert column["crs"]["id"] == {"authority": "OGC", "code": "CRS84"}
    # Footprints decode, in lon/lat, cut at the antimeridian for the Aleutian scene.
    geoms = shapely.from_wkb(table.column("geometry").to_pylist())
    assert shapely.bounds(geoms)[:, 0].min() >= -180 and shapely.bounds(geoms)[:, 2].max() <= 180
    rows = table.to_pylist()
    dateline = [g for g, r in zip(geoms, rows, strict=True) if r["scene_id"] == "cog_dateline"]
    assert any(g.geom_type == "MultiPolygon" for g in dateline)
    assert all(r["crs"] == "EPSG:32660" for r in rows if r["scene_id"] == "cog_dateline")
    gcp = [r for r in rows if r["scene_id"] == "cog_gcps"]
    assert gcp and all(r["crs"] == "EPSG:4326" for r in gcp)
    first = rows[0]
    assert first["chip_id"] == index.chip_ids[0]
    assert first["hrefs"] == list(index.scene_of(0).hrefs) and first["assets"] == []
    assert first["overview_level"] is None and first["split"] == "train"
    # Quads are written from their corners: the bytes shapely writes for the footprints.
    expected = shapely.to_wkb(index.footprints("EPSG:4326"), output_dimension=2)
    assert table.column("geometry").to_pylist() == list(expected)
    # The bbox covering column agrees with the geometry.
    bbox = np.array([[r["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for r in rows])
    assert np.allclose(bbox, shapely.bounds(geoms))
    # The footprint of a chip contains the lon/lat of its centre pixel.
    bounds = index.bounds()
    for position in (0, len(index) // 2, len(index) - 1):
        scene = index.scene_of(position)
        if scene.georef != "transform":
            continue
        cx = (bounds[position, 0] + bounds[position, 2]) / 2
        cy = (bounds[position, 1] + bounds[position, 3]) / 2
        (lon,), (lat,) = warp_transform(scene.crs, "EPSG:4326", [cx], [cy])
        assert geoms[position].contains(shapely.Point(lon, lat))


def test_geopandas_reads_footprints_crs_and_columns(index, tmp_path):
    geopandas = pytest.importorskip("geopandas")  # in the test extra; optional for users
    target = tmp_path / "chips.parquet"
    index.save(target)
    frame = geopandas.read_parquet(target)
    assert len(frame) == len(index) and frame.crs.to_string() in ("OGC:CRS84", "EPSG:4326")
    assert list(frame["chip_id"]) == index.chip_ids
    assert frame.geometry.name == "geometry" and frame.geometry.is_valid.all()
    expected = shapely.from_wkb(pq.read_table(target).column("geometry").to_pylist())
    assert all(shapely.equals(expected, np.asarray(frame.geometry)))
    assert list(frame["row_off"]) == index.column("row_off").tolist()
    assert set(frame["split"]) == {"train"}
    assert np.allclose(frame["valid_fraction"], index.column("valid_fraction"))
    # A spatial query works as a GIS user would run it: chips of the Aleutian scene.
    aleutians = frame[frame.intersects(shapely.box(170, 50, 180, 55))]
    assert set(aleutians["scene_id"]) == {"cog_dateline"}


def test_duckdb_reads_the_file_when_installed(index, tmp_path):
    duckdb = pytest.importorskip("duckdb")  # no spatial extension: it needs a download
    target = tmp_path / "chips.parquet"
    index.save(target)
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT chip_id, row_off, col_off, height, width, split, geometry "
            "FROM read_parquet(?) ORDER BY file_row_number",
            [str(target)],
        ).fetchall()
        geo = con.execute(
            "SELECT value FROM parquet_kv_metadata(?) WHERE key = 'geo'", [str(target)]
        ).fetchone()
    assert [r[0] for r in rows] == index.chip_ids
    window = index.window(7)
    assert rows[7][1:5] == (window.row_off, window.col_off, window.height, window.width)
    assert {r[5] for r in rows} == {"train"}
    footprints = shapely.from_wkb([bytes(r[6]) for r in rows])
    expected = shapely.from_wkb(pq.read_table(target).column("geometry").to_pylist())
    assert all(shapely.equals(footprints, expected))
    assert json.loads(geo[0])["primary_column"] == "geometry"


def test_signed_hrefs_and_signers_are_never_saved(tmp_path, make_scene):
    href = make_scene()
    signed = f"{href}?se=2030-01-01&sig=SECRETSIGNATURE"
    index = ChipIndex.build([href], size=20, sign=None)
    # A scene whose href itself carries a token (a pre-signed URL given by the user).
    scene = index.scenes[0]
    leaky = ChipIndex(
        [type(scene)(**{**scene.__dict__, "hrefs": (signed,)})],
        {name: index.column(name) for name in index.column_names},
        size=index.size,
        stride=index.stride,
        edge=index.edge,
        signer=lambda h: h + "?sig=SECRETSIGNATURE",
    )
    target = tmp_path / "chips.parquet"
    leaky.save(target)
    assert b"SECRETSIGNATURE" not in target.read_bytes()
    back = ChipIndex.load(target, sign=lambda h: h + "?sig=NEW")
    assert back.scenes[0].hrefs == (href,)
    assert back.signer is not None and back.signer("x") == "x?sig=NEW"


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: p.write_text("not parquet"), "cannot read"),
        (lambda p: pq.write_table(pa.table({"a": [1]}), p), "not a geochips index"),
        (lambda p: _edit_meta(p, lambda m: {**m, "version": 99}), "version 99"),
        (lambda p: _edit_meta(p, lambda m: {**m, "format": "other"}), "not a valid geochips index"),
        (
            lambda p: _edit_meta(p, lambda m: {**m, "scenes": [{"id": 1}]}),
            "not a valid geochips index",
        ),
        (lambda p: _edit_meta(p, lambda m: {**m, "scenes": []}), "not a valid geochips index"),
        (lambda p: _edit_raw(p, b"\x80\x04\x95cos\nsystem\n"), "not a valid geochips index"),
        (lambda p: _edit_chip_ids(p), "inconsistent"),
        (lambda p: p.unlink(), "cannot read"),
    ],
)
def test_malformed_files_are_clear_errors(index, tmp_path, damage, match):
    target = tmp_path / "chips.parquet"
    index[:10].save(target)
    damage(target)
    with pytest.raises(IndexFileError, match=match):
        ChipIndex.load(target)


def _edit_raw(path, raw):
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"geochips": raw}), path)


def _edit_meta(path, change):
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"geochips"])
    _edit_raw(path, json.dumps(change(meta)).encode())


def _edit_chip_ids(path, row=3, row_group_size=None):
    """Give row ``row`` a chip id of another chip, keeping row groups of ``row_group_size``."""
    table = pq.read_table(path)
    ids = table.column("chip_id").to_pylist()
    ids[row] = "someone/else"
    position = table.column_names.index("chip_id")
    edited = table.set_column(position, "chip_id", pa.array(ids))
    pq.write_table(edited, path, row_group_size=row_group_size)


@pytest.mark.parametrize(("group", "row"), [(2, 3), (3, 3), (4, 9), (1 << 16, 3)])
def test_an_edited_chip_id_is_found_whichever_row_group_holds_it(
    index, tmp_path, monkeypatch, group, row
):
    monkeypatch.setattr(index_save, "ROW_GROUP", group)
    target = tmp_path / "chips.parquet"
    index[:10].save(target)
    assert pq.ParquetFile(target).num_row_groups == -(-10 // group)
    assert len(ChipIndex.load(target)) == 10
    _edit_chip_ids(target, row, row_group_size=group)
    assert pq.ParquetFile(target).num_row_groups == -(-10 // group)
    with pytest.raises(IndexFileError, match=f"row {row} has chip_id 'someone/else'"):
        ChipIndex.load(target)


def test_bad_windows_are_found_and_counted_whichever_slice_checks_them(
    index, tmp_path, monkeypatch
):
    monkeypatch.setattr(index_meta, "CHECK_ROWS", 3)
    target = tmp_path / "chips.parquet"
    index[:10].save(target)
    _set_value("height", 4, 0)(target)
    _set_value("width", 8, -2)(target)
    with pytest.raises(IndexFileError, match=r"row 4: window .* \(2 such row\(s\)\)"):
        ChipIndex.load(target)


def test_columns_that_cannot_be_saved_are_refused(index, tmp_path):
    with pytest.raises(InvalidParameterError, match="clash"):
        index.with_columns(geometry=np.zeros(len(index))).save(tmp_path / "a.parquet")
    mixed = np.array([1, "a"] * (len(index) // 2) + [1] * (len(index) % 2), dtype=object)
    with pytest.raises(InvalidParameterError, match="cannot be saved"):
        index.with_columns(mixed=mixed).save(tmp_path / "b.parquet")


def test_stac_assets_and_overview_levels_are_kept(tmp_path):
    band = str(sample_path("scene_band1.tif"))
    source = SceneSource(
        "s2", (band, str(sample_path("scene_band2.tif"))), ("B01", "B02"), {"eo:cloud_cover": 3.5}
    )
    index = ChipIndex.build([source], size=64, overview_level=0)
    index.save(tmp_path / "s2.parquet")
    back = ChipIndex.load(tmp_path / "s2.parquet")
    assert_same(index, back)
    assert back.scenes[0].properties == {"eo:cloud_cover": 3.5}
    row = pq.read_table(tmp_path / "s2.parquet").to_pylist()[0]
    assert row["assets"] == ["B01", "B02"] and row["overview_level"] == 0
    assert row["chip_id"].startswith("s2/ov0/")


def test_without_pyarrow_the_error_says_what_to_install(index, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install geochips\[parquet\]"):
        index.save(tmp_path / "x.parquet")


DTYPES = st.sampled_from(["int8", "uint16", "int64", "float32", "float64", "bool", "U3", "O"])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    dtypes=st.lists(DTYPES, max_size=4),
)
def test_property_any_selection_and_columns_round_trip(index, tmp_path_factory, data, dtypes):
    positions = data.draw(st.lists(st.integers(0, len(index) - 1), max_size=40, unique=True))
    part = index.select(np.array(positions, dtype=np.int64))
    rng = np.random.default_rng(len(positions))
    columns = {}
    for k, dtype in enumerate(dtypes):
        values = rng.integers(0, 100, size=len(part))
        if dtype == "O":
            columns[f"c{k}"] = np.array([f"v{v}" if v % 4 else None for v in values], dtype=object)
        else:
            columns[f"c{k}"] = values.astype(dtype)
    part = part.with_columns(**columns)
    target = tmp_path_factory.mktemp("rt") / "part.parquet"
    part.save(target)
    assert_same(part, ChipIndex.load(target))


def test_load_signs_planetary_computer_hrefs_by_default_as_build_does(tmp_path):
    scene = scene_header(
        "s1",
        64,
        64,
        hrefs=("https://sentinel1euwest.blob.core.windows.net/s1-grd/vv.tif",),
        assets=("vv",),
        overview_level=3,
        full_shape=(512, 512),
    )
    index = ChipIndex.from_scenes([scene], size=32)
    index.save(tmp_path / "pc.parquet")
    assert ChipIndex.load(tmp_path / "pc.parquet").signer is not None  # signs lazily, at read
    assert ChipIndex.load(tmp_path / "pc.parquet", sign=None).signer is None
    with pytest.raises(InvalidParameterError, match="sign must be"):
        ChipIndex.load(tmp_path / "pc.parquet", sign="nope")


# -- every value of a loaded file is checked ----------------------------------------------


def _edit_scene(path, position, **fields):
    def change(meta):
        meta["scenes"][position].update(fields)
        return meta

    _edit_meta(path, change)


def _set_key(key, value):
    return lambda p: _edit_meta(p, lambda m: {**m, key: value})


def _edit_column(path, name, change):
    """Replace column ``name`` by ``change(array)`` (an Arrow array)."""
    table = pq.read_table(path)
    position = table.column_names.index(name)
    column = table.column(name).combine_chunks()
    pq.write_table(table.set_column(position, name, change(column)), path)


def _set_value(name, row, value, type=None):
    def change(column):
        values = column.to_pylist()
        values[row] = value
        return pa.array(values, type or column.type)

    return lambda p: _edit_column(p, name, change)


def _edit_column_info(column, **fields):
    def change(meta):
        for info in meta["columns"]:
            if info["name"] == column:
                info.update(fields)
        return meta

    return lambda p: _edit_meta(p, change)


def _nest(depth):
    return lambda p: _edit_raw(p, b"[" * depth + b"]" * depth)


SCENE_DAMAGE = [
    ({"height": -1}, "scene 0 ('mosaic_cog1_ov0'): field 'height' must be an int in 1.."),
    ({"height": 0}, "'height' must be an int in 1"),
    ({"width": 10**30}, "'width' must be an int in 1"),
    ({"width": 3.5}, "'width' must be an int"),
    ({"hrefs": []}, "'hrefs' must be a non-empty list"),
    ({"hrefs": "a.tif"}, "'hrefs' must be a list"),
    ({"band_counts": [0]}, "'band_counts' must be an int in 1"),
    ({"band_counts": [1, 2]}, "'band_counts' must be a list of 1 values"),
    ({"assets": ["a", "b"]}, "'assets' must be empty or one value per href"),
    ({"dtype": "uint9"}, "'dtype' must be one of uint8"),
    ({"dtype": 16}, "'dtype' must be a string"),
    ({"nodata": 70000}, "'nodata' must be an integer in the uint16 range"),
    ({"nodata": 0.5}, "'nodata' must be an integer"),
    ({"nodata": "0"}, "'nodata' must be a number"),
    ({"overview_level": -1}, "'overview_level' must be an int in 0"),
    ({"transform": [0, 0, 0, 0, 0, 0]}, "'transform' must be 6 finite values of an invertible"),
    ({"transform": [float("nan")] * 6}, "'transform' must be a finite number"),
    ({"transform": [1, 0, 0, 0, -1]}, "'transform' must be a list of 6 values"),
    ({"transform": None}, "'transform' must be null exactly when georef is 'none'"),
    ({"georef": "magic"}, "'georef' must be one of"),
    ({"gcps": [[1, 2, 3]]}, "'gcps' must be a list of 4 values"),
    ({"crs": "not a crs"}, "'crs' must be a CRS PROJ parses"),
    ({"crs": ["EPSG:4326"]}, "'crs' must be a string"),
    ({"tile_shape": [0, 16]}, "'tile_shape' must be an int in 1"),
    ({"full_shape": [10]}, "'full_shape' must be a list of 2 values"),
    ({"scales": [1.0]}, "'scales' must be empty or one value per band"),
    ({"properties": []}, "'properties' must be a JSON object"),
    ({"resampling": "blur"}, "'resampling' must be null or one of"),
    ({"warped": [True]}, "'resampling' must be set when a file is warped"),
    ({"id": ""}, "'id' must be a non-empty string"),
]


@pytest.mark.parametrize("fields, match", SCENE_DAMAGE)
def test_every_scene_field_is_checked(index, tmp_path, fields, match):
    target = tmp_path / "chips.parquet"
    index[:10].save(target)
    _edit_scene(target, 0, **fields)
    with pytest.raises(IndexFileError, match="not a valid geochips index") as info:
        ChipIndex.load(target)
    message = str(info.value)
    assert str(target) in message and match in message, message


def test_gcp_scenes_need_three_gcps(index, tmp_path):
    target = tmp_path / "chips.parquet"
    index.save(target)
    gcp = [s.id for s in index.scenes].index("cog_gcps")
    _edit_scene(target, gcp, gcps=[[0, 0, 1, 1]])
    with pytest.raises(IndexFileError, match=r"scene 2 \('cog_gcps'\): field 'gcps' must be at"):
        ChipIndex.load(target)


def test_nodata_must_fit_the_dtype(index, tmp_path):
    target = tmp_path / "chips.parquet"
    index.save(target)
    byte = [s.id for s in index.scenes].index("RGB.byte")
    _edit_scene(target, byte, nodata=-1)
    with pytest.raises(IndexFileError, match="'nodata' must be an integer in the uint8 range"):
        ChipIndex.load(target)


@pytest.mark.parametrize(
    "damage, match",
    [
        (_set_key("size", [-5, 3]), "'size' must be null or 2 ints"),
        (_set_key("stride", [1.5, 2]), "'stride' must be null or 2 ints"),
        (_set_key("edge", "sideways"), "'edge' must be null or one of"),
        (_set_key("scenes", "abc"), "'scenes' must be a list"),
        (_set_key("scenes", [1, 2]), "scene 0: a scene must be a JSON object"),
        (_set_key("columns", {"a": 1}), "'columns' must be a list"),
        (_set_key("columns", []), "lacks ['scene', 'row_off', 'col_off', 'height', 'width']"),
        (lambda p: _edit_meta(p, lambda m: [m]), "must be an object with format"),
        (
            lambda p: _edit_meta(p, lambda m: {k: v for k, v in m.items() if k != "size"}),
            "no 'size'",
        ),
        (
            lambda p: _edit_meta(p, lambda m: {k: v for k, v in m.items() if k != "version"}),
            "'version' must be 1",
        ),
        (_nest(100_000), "metadata is not JSON (RecursionError"),
        (lambda p: _edit_raw(p, b"\xff\xfe"), "metadata is not JSON"),
        (_edit_column_info("row_off", dtype="<f8"), "column 'row_off': dtype must be"),
        (_edit_column_info("row_off", dtype="not a dtype"), "column 'row_off': dtype must be"),
        (_edit_column_info("valid_fraction", dtype="V8"), "column 'valid_fraction': dtype must be"),
        (_edit_column_info("valid_fraction", dtype="<U999999"), "wider than 65536"),
        (_edit_column_info("valid_fraction", shape=[-1]), "shape must be [] or [k]"),
        (_edit_column_info("row_off", name="geometry"), "written from the scenes"),
        (
            _set_value("row_off", 0, 1.5, pa.float64()),
            "column 'row_off': expected Arrow type int32",
        ),
        (_set_value("row_off", 0, None), "column 'row_off' has 1 null value"),
        (
            lambda p: _edit_column(p, "valid_fraction", lambda c: c.cast(pa.string())),
            "'valid_fraction': expected Arrow type float for dtype float32, got string",
        ),
        (_set_value("label", 0, None), "column 'label' has 1 null value"),
        (_set_value("label", 0, "validation"), "holds strings of 10 characters"),
        (_set_value("height", 0, -1), "height=-1"),
        (_set_value("height", 0, 0), "be at least 1x1"),
        (_set_value("row_off", 0, 2**31 - 1), "edge='drop' windows must lie inside their scene"),
        (_set_value("col_off", 1, 2**20), "row 1: window"),
        (_set_value("col_off", 1, -1), "row 1: window"),
        (_set_value("scene", 2, 99), "row 2 refers to scene 99 but the file has 4 scene(s)"),
        (_set_value("scene", 2, -1), "row 2 refers to scene -1"),
        (_set_value("chip_id", 2, None), "row 2 has chip_id None"),
    ],
)
def test_every_grid_and_column_value_is_checked(index, tmp_path, damage, match):
    target = tmp_path / "chips.parquet"
    index[:10].with_columns(label=np.array(["ab", "c"] * 5)).save(target)
    damage(target)
    with pytest.raises(IndexFileError, match="not a valid geochips index") as info:
        ChipIndex.load(target)
    message = str(info.value)
    assert str(target) in message and match in message, message
    assert "unexpected" not in message  # a named check caught it, not the safety net


def test_two_dimensional_columns_must_keep_their_arrow_type(index, tmp_path):
    target = tmp_path / "chips.parquet"
    part = index[:10]
    part.with_columns(embedding=np.zeros((10, 3), np.float32)).save(target)
    _edit_column(target, "embedding", lambda c: pa.array(c.to_pylist(), pa.list_(pa.float32())))
    with pytest.raises(IndexFileError, match=r"fixed_size_list<float>\[3\]"):
        ChipIndex.load(target)


def _pad_index(tmp_path):
    scene = scene_header("s", 50, 60, crs="EPSG:32618", transform=Affine(10, 0, 5e5, 0, -10, 4e6))
    index = ChipIndex.from_scenes([scene], size=32, edge="pad")
    target = tmp_path / "pad.parquet"
    index.save(target)
    return index, target


def test_pad_windows_may_extend_past_the_scene_but_must_overlap_it(tmp_path):
    index, target = _pad_index(tmp_path)
    assert (index.column("row_off") + index.column("height")).max() > 50  # padded windows
    assert_same(index, ChipIndex.load(target))
    for column, value in (("row_off", 50), ("col_off", -32), ("height", 10**6)):
        _pad_index(tmp_path)
        _set_value(column, 0, value)(target)
        with pytest.raises(IndexFileError, match="edge='pad' windows must overlap their scene"):
            ChipIndex.load(target)


def test_a_missing_file_is_an_index_file_error_that_says_so(tmp_path):
    with pytest.raises(IndexFileError, match="does not exist"):
        ChipIndex.load(tmp_path / "nowhere.parquet")
