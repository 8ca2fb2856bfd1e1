"""The public API: the names users import from ``geochips``, and what importing costs."""

import subprocess
import sys
import textwrap

import pytest

import geochips

# The contract (DESIGN.md and the README): changing it is a decision, not a side effect.
PUBLIC = {
    "AlignmentReport", "BandStats", "BlockShuffleSampler", "Chip", "ChipDataset", "ChipIndex",
    "ChipNotFoundError", "ChipWindow", "CollateError", "DiskSpaceError", "DtypeConversionError",
    "GeochipsError",
    "GeochipsWarning", "IncompatibleScenesError", "IndexFileError", "InvalidParameterError",
    "LeakageError", "LeakageReport", "OverviewWarning", "RasterLabels", "Sample", "Scene",
    "SceneChangedError", "SceneHeaderError", "SceneReadError", "SmallSceneWarning",
    "SplitReport", "Splits", "Stitcher", "TileAlignmentWarning", "TransformError",
    "VectorLabels", "band_stats", "check_alignment", "check_leakage", "collate",
    "estimate_valid", "filter_aoi", "filter_labels", "localize", "record_band_stats",
    "record_checksums",
    "spatial_split",
}  # fmt: skip
# geochips.transforms, a module of its own (it imports torch).
TRANSFORMS = {
    "ELEMENTS", "Compose", "Dihedral", "RandomDihedral", "RandomFlip", "RandomRotate90",
}  # fmt: skip


def test_all_is_the_contract_sorted_and_every_name_resolves():
    assert geochips.__all__ == sorted(PUBLIC)
    for name in geochips.__all__:
        assert getattr(geochips, name).__doc__, f"geochips.{name} has no docstring"


def test_transforms_is_a_module_with_its_own_contract():
    import geochips.transforms
    from geochips import transforms
    from geochips.loading import transforms as implementation

    assert transforms is geochips.transforms
    assert transforms.__all__ == sorted(TRANSFORMS)
    for name in transforms.__all__:
        assert getattr(transforms, name) is getattr(implementation, name)


def test_internals_of_earlier_versions_warn_and_still_resolve():
    from geochips.io.headers import read_headers

    with pytest.warns(DeprecationWarning, match="geochips.io.headers"):
        assert geochips.read_headers is read_headers
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        geochips.nothing  # noqa: B018


@pytest.mark.slow
def test_the_index_layer_works_without_importing_torch(tmp_path):
    # A fresh interpreter: build, select, split, prove, save and load, then check torch
    # was never imported; a ChipDataset then imports it.
    pytest.importorskip("pyarrow")
    script = textwrap.dedent(
        f"""
        import sys
        import geochips
        from geochips.testing import write_scene
        paths = [write_scene({str(tmp_path)!r} + f"/s{{i}}.tif", height=64, width=64, nodata=0)
                 for i in range(2)]
        index = geochips.ChipIndex.build(paths, size=16)
        index = geochips.estimate_valid(index, min_valid=0.1)
        splits = geochips.spatial_split(index, {{"train": 0.5, "val": 0.5}}, seed=0)
        geochips.check_leakage(splits)
        geochips.check_alignment(index)
        index.save({str(tmp_path / "chips.parquet")!r})
        again = geochips.ChipIndex.load({str(tmp_path / "chips.parquet")!r})
        assert len(again) == len(index)
        assert "torch" not in sys.modules, "the index layer imported torch"
        geochips.ChipDataset(again)[0]
        assert "torch" in sys.modules
        geochips.transforms.RandomDihedral()(geochips.ChipDataset(again)[0])
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
