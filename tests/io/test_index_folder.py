"""An index of any size: the folder layout, partial loads (columns, filters, shards) and v1 files.

Every check compares against the index in memory (or built again from the same real COGs)
and, for pixels, against direct rasterio reads; the multi-rank check runs real gloo ranks.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
import torch.distributed as dist
from rasterio.windows import Window
from support.oracles import assert_same_index
from support.ranks import free_port, spawn_ranks

import geochips
from geochips import ChipIndex, IndexFileError
from geochips.errors import InvalidParameterError
from geochips.io import index_save
from geochips.io.index_meta import SCENES

pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")

DATA = Path(__file__).parents[1] / "data"
BBOX = ("xmin", "ymin", "xmax", "ymax")
SOURCES = [str(DATA / "mosaic_cog1_ov0.tif"), str(DATA / "cog_dateline.tif")]


@pytest.fixture(scope="module")
def index():
    """Two real COGs in two UTM zones (one across the antimeridian), with own columns."""
    built = ChipIndex.build([*SOURCES, str(DATA / "mosaic_cog2_ov0.tif")], size=64, stride=64)
    n = len(built)
    return built.with_columns(
        split=np.array(["train", "val", "test"] * (n // 3) + ["train"] * (n % 3)),
        cloud=np.linspace(0, 1, n).astype(np.float32),
        embedding=np.arange(n * 2, dtype=np.float32).reshape(-1, 2),
    )


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 500 rows in row groups of 128, so a small index spans several of each."""
    monkeypatch.setattr(index_save, "PART_ROWS", 500)
    monkeypatch.setattr(index_save, "ROW_GROUP", 128)


def test_a_folder_round_trips_exactly_in_several_parts(index, tmp_path, small_parts):
    target = tmp_path / "chips"
    index.save(f"{target}/")  # a trailing separator means a folder
    parts = sorted(p.name for p in target.iterdir())
    count = -(-len(index) // 500)
    assert parts == [SCENES] + [f"part-{k:06d}.parquet" for k in range(count)]
    assert pq.ParquetFile(target / "part-000000.parquet").num_row_groups == 4
    back = ChipIndex.load(target)
    assert_same_index(index, back)
    # Saved again into the existing folder (which is one by now: no separator needed).
    back.select(np.arange(0, len(back), 2)).save(target)
    assert ChipIndex.load(target).chip_ids == index.chip_ids[::2]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_pyarrow_and_geopandas_read_every_chip_of_a_folder(index, tmp_path, small_parts):
    target = tmp_path / "chips"
    index.save(target, folder=True)
    table = pq.read_table(target)  # the scene table's leading "_" keeps it out
    assert table.column("chip_id").to_pylist() == index.chip_ids
    # The bytes shapely writes, in row groups with the antimeridian's MultiPolygons too.
    wkb = shapely.to_wkb(index.footprints("EPSG:4326"), output_dimension=2)
    assert table.column("geometry").to_pylist() == list(wkb)
    geopandas = pytest.importorskip("geopandas")
    frame = geopandas.read_parquet(target)
    assert list(frame["chip_id"]) == index.chip_ids
    assert frame.crs.to_string() in ("OGC:CRS84", "EPSG:4326") and frame.geometry.is_valid.all()
    expected = geopandas.GeoSeries(index.footprints("EPSG:4326"), crs="OGC:CRS84")
    assert frame.geometry.geom_equals_exact(expected, tolerance=1e-9).all()
    scenes = pq.read_table(target / SCENES)
    assert scenes.column("scene_id").to_pylist() == [s.id for s in index.scenes]


def test_row_groups_of_quads_are_the_wkb_shapely_writes(index, tmp_path, small_parts):
    # Without the antimeridian scene every footprint is a quad, written from its corners.
    quads = index[index.column("scene") != 1]
    quads.save(tmp_path / "quads.parquet")
    table = pq.read_table(tmp_path / "quads.parquet")
    wkb = shapely.to_wkb(quads.footprints("EPSG:4326"), output_dimension=2)
    assert set(shapely.get_type_id(shapely.from_wkb(wkb)).tolist()) == {3}
    assert table.column("geometry").to_pylist() == list(wkb)
    geo = json.loads(table.schema.metadata[b"geo"])["columns"]["geometry"]
    assert geo["geometry_types"] == ["Polygon"]
    bbox = [table.column("bbox").combine_chunks().field(k).to_numpy() for k in BBOX]
    np.testing.assert_array_equal(np.stack(bbox, axis=1), shapely.bounds(shapely.from_wkb(wkb)))


def test_scene_headers_too_big_for_a_footer_are_refused_and_a_folder_holds_them(
    index, tmp_path, monkeypatch
):
    monkeypatch.setattr(index_save, "FOOTER_LIMIT", 1000)
    target = tmp_path / "chips.parquet"
    with pytest.raises(InvalidParameterError, match=r"save it to a folder: index\.save\('"):
        index.save(target)
    assert not list(tmp_path.iterdir())  # refused before anything is written
    index.save(tmp_path / "chips", folder=True)
    assert_same_index(index, ChipIndex.load(tmp_path / "chips"))


@pytest.mark.parametrize("layout", ["file", "folder"])
@pytest.mark.parametrize("filters", [None, [("split", "==", "train")]])
def test_shards_are_contiguous_disjoint_whole_and_even(
    index, tmp_path, small_parts, layout, filters
):
    target = tmp_path / ("chips" if layout == "folder" else "chips.parquet")
    index.save(target, folder=layout == "folder")
    keep = (
        np.arange(len(index))
        if filters is None
        else np.flatnonzero(index.column("split") == "train")
    )
    wanted = [index.chip_ids[i] for i in keep]
    for world in (1, 2, 3, 5):
        shares = [
            ChipIndex.load(target, filters=filters, shard=(rank, world)) for rank in range(world)
        ]
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1
        assert [c for s in shares for c in s.chip_ids] == wanted  # in order: contiguous, whole
        for share in shares:
            rows = [index.position(c) for c in share.chip_ids]
            for name in ("split", "cloud", "embedding", "row_off"):
                assert share.column(name).tolist() == index.column(name)[rows].tolist(), name


def test_a_part_keeps_only_its_scenes_and_reads_their_pixels(index, tmp_path, small_parts):
    target = tmp_path / "chips"
    index.save(target, folder=True)
    last = ChipIndex.load(target, shard=(4, 5))  # the dateline scene's and mosaic 2's chips
    used = sorted({index.scene_of(index.position(c)).id for c in last.chip_ids})
    assert [s.id for s in last.scenes] == used
    assert last.column("scene").max() == len(used) - 1
    dataset = geochips.ChipDataset(last, bands=[1])
    for position in (0, len(last) // 2, len(last) - 1):
        chip = last[position]
        assert chip == index[chip.chip_id]
        r, c, h, w = chip.window.row_off, chip.window.col_off, chip.window.height, chip.window.width
        with rasterio.open(chip.scene.hrefs[0]) as src:
            expected = src.read([1], window=Window(c, r, w, h))
        np.testing.assert_array_equal(dataset[position]["image"].numpy(), expected)


def test_columns_reads_only_those_and_names_unknown_ones(index, tmp_path):
    target = tmp_path / "chips.parquet"
    index.save(target)
    back = ChipIndex.load(target, columns=["cloud"])
    own = ("split", "cloud", "embedding")
    assert back.column_names == (*[n for n in index.column_names if n not in own], "cloud")
    assert back.chip_ids == index.chip_ids
    assert back.column("cloud").tolist() == index.column("cloud").tolist()
    with pytest.raises(InvalidParameterError, match=r"columns \['clouds'\] are not among"):
        ChipIndex.load(target, columns=["clouds"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard": (2, 2)}, r"0 <= rank < world, got \(2, 2\)"),
        ({"shard": (0, 0)}, r"0 <= rank < world"),
        ({"shard": (True, 2)}, r"shard must be \(rank, world\)"),
        ({"shard": 3}, r"shard must be \(rank, world\)"),
        ({"filters": [("split", "~", "x")]}, r"filters must be a pyarrow expression"),
        ({"filters": [("nope", "==", "x")]}, r"name a column .* does not have"),
    ],
)
def test_bad_partial_loads_are_clear_errors(index, tmp_path, kwargs, match):
    target = tmp_path / "chips.parquet"
    index.save(target)
    with pytest.raises(InvalidParameterError, match=match):
        ChipIndex.load(target, **kwargs)


def test_a_damaged_folder_is_an_index_file_error(index, tmp_path, small_parts):
    target = tmp_path / "chips"
    index.save(target, folder=True)
    with pytest.raises(IndexFileError, match=r"one part of a folder index; load the folder"):
        ChipIndex.load(target / "part-000001.parquet")
    # A part with other rows than the scene table lists (one replaced by a shorter one).
    first = pq.read_table(target / "part-000000.parquet")
    pq.write_table(first.slice(0, 10), target / "part-000001.parquet")
    with pytest.raises(IndexFileError, match=r"part 'part-000001.parquet' has 10 rows where"):
        ChipIndex.load(target)
    os.remove(target / "part-000001.parquet")
    with pytest.raises(IndexFileError, match=r"part file\(s\) \['part-000001.parquet'\] are"):
        ChipIndex.load(target)
    os.remove(target / SCENES)
    with pytest.raises(IndexFileError, match=r"cannot read .*_scenes.parquet.* does not exist"):
        ChipIndex.load(target)


def test_a_folder_save_that_fails_keeps_the_older_index(index, tmp_path):
    target = tmp_path / "chips"
    old = index.select(np.arange(10))
    old.save(target, folder=True)

    def fail_once_written(done: int, total: int) -> None:
        if done == total:  # every chip written, the scene table not yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.save(target, folder=True, progress=fail_once_written)
    assert ChipIndex.load(target).chip_ids == old.chip_ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips"]


def test_a_folder_that_is_not_an_index_is_never_replaced(index, tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(InvalidParameterError, match=r"holds no geochips index .* not replaced"):
        index.save(target)
    assert sorted(p.name for p in target.iterdir()) == ["cat.jpg"]
    with pytest.raises(InvalidParameterError, match=r"is a folder; save to a file path"):
        index.save(target, folder=False)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match=r"is a file; a folder index cannot"):
        index.save(tmp_path / "file", folder=True)


def test_an_index_saved_by_version_one_still_loads():
    # Written by geochips at commit b60c35c from the same files (tests/data/README.md).
    built = ChipIndex.build(SOURCES, size=256, stride=128)
    n = len(built)
    expected = built.with_columns(
        cloud=np.linspace(0, 1, n).astype(np.float32),
        split=np.array(["train", "val"] * (n // 2) + ["train"] * (n % 2)),
    )
    old = ChipIndex.load(DATA / "index_v1.parquet")
    # Saved from another checkout: the same scenes, at another absolute path.
    moved = [replace(s, hrefs=tuple(str(DATA / Path(h).name) for h in s.hrefs)) for s in old.scenes]
    assert moved == list(expected.scenes)
    assert old.chip_ids == expected.chip_ids
    for name in expected.column_names:
        if name != "scene":
            assert old.column(name).tolist() == expected.column(name).tolist(), name


# -- real ranks --------------------------------------------------------------------------


def load_share(rank: int, port: int, path: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    share = ChipIndex.load(
        path, filters=[("split", "!=", "test")], shard=(dist.get_rank(), dist.get_world_size())
    )
    sizes = [None, None]
    dist.all_gather_object(sizes, len(share))
    dataset = geochips.ChipDataset(share, bands=[1])
    sums = [int(dataset[i]["image"].sum()) for i in range(0, len(share), 97)]
    dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"ids": share.chip_ids, "sizes": sizes, "sums": sums})
    )


@pytest.mark.slow
def test_each_gloo_rank_loads_its_own_share(index, tmp_path, monkeypatch, small_parts):
    target = tmp_path / "chips"
    index.save(target, folder=True)
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback only
    spawn_ranks(load_share, (free_port(), str(target), str(tmp_path)), timeout=90)
    shares = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    keep = [c for c, s in zip(index.chip_ids, index.column("split"), strict=True) if s != "test"]
    assert shares[0]["ids"] + shares[1]["ids"] == keep
    assert shares[0]["sizes"] == shares[1]["sizes"] == [len(s["ids"]) for s in shares]
    for share in shares:
        for k, chip_id in zip(range(0, len(share["ids"]), 97), share["ids"][::97], strict=True):
            chip = index[chip_id]
            w = chip.window
            with rasterio.open(chip.scene.hrefs[0]) as src:
                pixels = src.read(1, window=Window(w.col_off, w.row_off, w.width, w.height))
            assert share["sums"][k // 97] == int(pixels.astype(np.int64).sum()), chip_id
