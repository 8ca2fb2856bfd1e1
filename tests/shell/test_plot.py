"""Pictures (geochips.plot): rendered headless with Agg, checked pixel by pixel."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

import geochips
import geochips.plot.scenes
from geochips import plot, sample_data
from geochips.errors import InvalidParameterError
from geochips.plot.figures import COLORS
from geochips.plot.samples import BOX_COLOR, INVALID, MASK_ALPHA

TRAIN, VAL = (np.array(to_rgb(c)) * 255 for c in COLORS[:2])


def render(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def pixel(pixels, ax, x, y):
    """The rendered colour at data point (x, y) of ax."""
    dx, dy = ax.transData.transform((x, y))
    return pixels[int(pixels.shape[0] - dy), int(dx)]


def region(pixels, ax, x0, y0, x1, y1, margin=2):
    """The rendered pixels inside the data box (x0, y0)-(x1, y1) of ax, less a margin."""
    (a, b), (c, d) = ax.transData.transform([(x0, y0), (x1, y1)])
    h = pixels.shape[0]
    r0, r1 = sorted((int(h - b), int(h - d)))
    c0, c1 = sorted((int(a), int(c)))
    return pixels[r0 + margin : r1 + 1 - margin, c0 + margin : c1 + 1 - margin].reshape(-1, 3)


def is_blank(pixels):
    return len(np.unique(pixels.reshape(-1, 3), axis=0)) < 10


@pytest.fixture(scope="module")
def buildings():
    index = geochips.ChipIndex.build([sample_data.path("spacenet_atlanta.tif")], size=256)
    labels = geochips.VectorLabels(
        sample_data.path("spacenet_atlanta_buildings.geojson"), boxes=True
    )
    return geochips.ChipDataset(geochips.filter_labels(index, labels, min_objects=1))


@pytest.fixture
def split(make_scene):
    """Two 64x64 scenes with overviews, chips of 8 px split with a buffer (chips dropped)."""
    paths = [make_scene(height=64, width=64, count=1, overviews=(2, 4)) for _ in range(2)]
    index = geochips.ChipIndex.build(paths, size=8)
    splits = geochips.spatial_split(index, {"train": 0.5, "val": 0.5}, seed=0, block=160, buffer=5)
    assert splits.report.dropped_by_reason["buffer"] > 0
    return splits


def test_importing_geochips_imports_neither_matplotlib_nor_torch():
    script = textwrap.dedent(
        """
        import sys
        import geochips
        import geochips.plot
        from geochips import plot
        assert plot.plot_index and plot.plot_map and plot.plot_sample and plot.plot_batch
        assert "matplotlib" not in sys.modules and "torch" not in sys.modules, sorted(sys.modules)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_drawing_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install geochips\[plot\]"):
        plot.plot_sample({"image": np.zeros((1, 4, 4))})


def test_a_sample_shows_its_bands_label_tint_boxes_and_title(buildings):
    sample = buildings[0]
    fig = plot.plot_sample(sample)
    pixels = render(fig)
    assert pixels.shape == (580, 500, 3)  # 5 x 5.8 inches at 100 dpi
    assert not is_blank(pixels)
    ax = fig.axes[0]
    assert ax.get_title().splitlines()[0] == sample["chip_id"]
    assert "spacenet_atlanta" in ax.get_title() and "EPSG:32616" in ax.get_title()
    mask = sample["mask"][0].numpy()
    # A labelled pixel deep inside a building: grey image plus the class-1 tint.
    inside = np.argwhere(
        (mask[1:-1, 1:-1] == 1) & (mask[:-2, 1:-1] == 1) & (mask[2:, 1:-1] == 1)
        & (mask[1:-1, :-2] == 1) & (mask[1:-1, 2:] == 1)
    )  # fmt: skip
    r, c = inside[len(inside) // 2] + 1
    red, green, blue = pixel(pixels, ax, c + 0.5, r + 0.5)
    tint = np.array(to_rgb(COLORS[0])) * 255 * MASK_ALPHA
    assert blue - red == pytest.approx(tint[2] - tint[0], abs=4)
    # An unlabelled pixel is grey (one band).
    r, c = np.argwhere(mask == 0)[0]
    assert len(set(pixel(pixels, ax, c + 0.5, r + 0.5))) == 1
    # Each box is outlined: the middle of its top edge is the box colour.
    x0, y0, x1, _ = sample["boxes"][0].tolist()
    found = region(pixels, ax, x0, y0 - 2, x1, y0 + 2)
    assert (np.abs(found - np.array(to_rgb(BOX_COLOR)) * 255).sum(axis=1) < 60).any()


def test_invalid_pixels_are_striped_and_db_marks_non_positive_values_invalid(make_scene):
    index = geochips.ChipIndex.build([make_scene(height=40, width=50)], size=32, edge="pad")
    sample = geochips.ChipDataset(index)[index.position(index.chip_ids[-1])]
    valid = sample["valid"][0].numpy()
    fig = plot.plot_sample(sample, bands=(3, 2, 1))
    pixels = render(fig)
    r, c = np.argwhere(~valid)[len(np.argwhere(~valid)) // 2]
    stripes = np.array(INVALID) * 255
    assert np.abs(stripes - pixel(pixels, fig.axes[0], c + 0.5, r + 0.5)).sum(axis=1).min() < 3
    # NumPy arrays work too; a zero has no decibels and is drawn invalid.
    image = np.full((1, 16, 16), 100.0)
    image[0, :, :4] = 0.0
    image[0, :, 8:] = 1000.0
    fig = plot.plot_sample({"image": image}, db=True, title=False)
    pixels = render(fig)
    ax = fig.axes[0]
    assert np.abs(stripes - pixel(pixels, ax, 1.5, 8.5)).sum(axis=1).min() < 3
    assert tuple(pixel(pixels, ax, 5.5, 8.5)) == (0, 0, 0)  # 20 dB: the 2 % value
    assert tuple(pixel(pixels, ax, 12.5, 8.5)) == (255, 255, 255)  # 30 dB: the 98 % value


@pytest.mark.parametrize("bands", [(0,), (1, 2), (1, 2, 4), ("1",)])
def test_bands_are_one_or_three_1_based_positions(bands):
    with pytest.raises(InvalidParameterError, match=r"1-based.*bands=\(3, 2, 1\)"):
        plot.plot_sample({"image": np.zeros((3, 4, 4))}, bands=bands)


def test_bad_input_names_the_fix():
    with pytest.raises(InvalidParameterError, match="for a batch use plot_batch"):
        plot.plot_sample({"image": np.zeros((2, 3, 4, 4))})
    with pytest.raises(InvalidParameterError, match="stretch must be"):
        plot.plot_sample({"image": np.zeros((1, 4, 4))}, stretch="linear")
    with pytest.raises(InvalidParameterError, match="for one sample use plot_sample"):
        plot.plot_batch({"image": np.zeros((3, 4, 4))})
    with pytest.raises(InvalidParameterError, match="n must be a positive int"):
        plot.plot_batch([{"image": np.zeros((1, 4, 4))}], n=0)
    with pytest.raises(InvalidParameterError, match="a ChipIndex or the Splits"):
        plot.plot_index(["scene.tif"])
    with pytest.raises(InvalidParameterError, match="a ChipIndex or the Splits"):
        plot.plot_map({})


def test_a_batch_is_a_contact_sheet_of_its_first_samples(buildings):
    batch = geochips.collate([buildings[i] for i in range(len(buildings))])
    fig = plot.plot_batch(batch, n=3)
    assert [ax.get_title() for ax in fig.axes] == batch["chip_id"][:3]
    assert not is_blank(render(fig))
    listed = plot.plot_batch([buildings[i] for i in range(len(buildings))], title=False)
    assert len(listed.axes) == len(buildings) and not any(ax.get_title() for ax in listed.axes)


def test_the_dataset_draws_its_samples(buildings):
    assert np.array_equal(render(buildings.plot(1)), render(plot.plot_sample(buildings[1])))


def test_plot_index_colours_chips_by_split_and_hatches_the_dropped(split):
    fig = plot.plot_index(split, alpha=1.0)
    pixels = render(fig)
    assert not is_blank(pixels)
    assert len(fig.axes) == 2
    train = split["train"]
    ax = next(ax for ax in fig.axes if ax.get_title().startswith(train.scenes[0].id))
    for name, colour in (("train", TRAIN), ("val", VAL)):
        chips = split[name].select(split[name].column("scene") == 0)
        w = chips.window(0)
        centre = pixel(pixels, ax, w.col_off + w.width / 2, w.row_off + w.height / 2)
        assert np.abs(centre - colour).max() <= 2, name
    dropped = split.report.dropped_chips
    w = dropped.window(int(np.flatnonzero(dropped.column("scene") == 0)[0]))
    inside = region(pixels, ax, w.col_off, w.row_off, w.col_off + w.width, w.row_off + w.height)
    magenta = (inside[:, 0] > 200) & (inside[:, 1] < 80) & (inside[:, 2] > 200)
    assert magenta.any(), "the dropped chip is not hatched"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == [f"train ({len(split['train'])})", f"val ({len(split['val'])})"]
    assert legend[2].startswith("dropped: lies closer than `buffer`")


def test_plot_index_reads_scenes_coarse_never_at_full_resolution(split, monkeypatch):
    reads = []

    def spy(*args, **kwargs):
        reads.append(read(*args, **kwargs))
        return reads[-1]

    read = geochips.plot.scenes.read_coarse
    monkeypatch.setattr(geochips.plot.scenes, "read_coarse", spy)
    fig = plot.plot_index(split, max_pixels=16 * 16)
    assert len(reads) == 2
    assert not any(r.full_resolution for r in reads)
    assert all(r.data.shape == (1, 16, 16) and r.how == "overview 1 (1/4)" for r in reads)
    assert all(ax.get_title().endswith("overview 1 (1/4)") for ax in fig.axes)


def test_plot_index_picks_a_scene_by_id_or_position(split):
    second = split["train"].scenes[1]
    for scene in (second.id, 1):
        (ax,) = plot.plot_index(split, scene=scene).axes
        assert ax.get_title().startswith(second.id)
    with pytest.raises(InvalidParameterError, match="give a scene id or a position"):
        plot.plot_index(split, scene="elsewhere")
    assert len(plot.plot_index(split, max_scenes=1).axes) == 1


def test_plot_index_outlines_the_aoi_in_each_scenes_pixels(split):
    train = split["train"]
    inner = int(np.flatnonzero((train.column("row_off") > 0) & (train.column("col_off") > 0))[0])
    w = train.window(inner)
    aoi = train.footprints("EPSG:4326")[inner]  # lon/lat, reprojected onto the scene's grid
    fig = plot.plot_index(train, scene=int(train.column("scene")[inner]), aoi=aoi, alpha=0.0)
    pixels = render(fig)
    x, y = w.col_off + 2, w.row_off  # along the chip's top edge
    top = region(pixels, fig.axes[0], x, y - 0.5, x + 4, y + 0.5, margin=0)
    cyan = (top[:, 0] < 80) & (top[:, 1] > 200) & (top[:, 2] > 200)
    assert cyan.any(), "the AOI outline is not on the chip's edge"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["AOI"]


def test_plot_map_colours_footprints_by_split_or_by_column(split):
    fig = plot.plot_map(split, alpha=1.0)
    pixels = render(fig)
    ax = fig.axes[0]
    centre = split["train"].footprints("EPSG:4326")[0].centroid
    assert np.abs(pixel(pixels, ax, centre.x, centre.y) - TRAIN).max() <= 2
    assert ax.get_title() == f"{sum(len(p) for p in split.values())} chips"
    index = split["train"]
    numbers = plot.plot_map(index.with_columns(score=np.linspace(0, 1, len(index))), column="score")
    assert len(numbers.axes) == 2 and numbers.axes[1].get_ylabel() == "score"  # the colorbar
    names = plot.plot_map(index, column="split")
    assert [t.get_text() for t in names.legends[0].get_texts()] == ["split = train"]
    with pytest.raises(InvalidParameterError, match="not a column of every index"):
        plot.plot_map(index, column="cloud")


def test_plot_map_draws_100k_chips_as_a_few_collections_not_a_patch_each(make_scene):
    # One artist per chip is what made 100k footprints slow; the count is checked, never
    # the time (benchmarks time things).
    index = geochips.ChipIndex.build([make_scene(height=320, width=320, count=1)], size=1)
    assert len(index) == 102_400
    figure = plot.plot_map(index)
    render(figure)
    ax = figure.axes[0]
    assert not ax.patches and 1 <= len(ax.collections) <= 4
    assert sum(len(c.get_paths()) for c in ax.collections) == len(index)


def test_plot_index_of_the_sample_data_with_labels_and_an_aoi(buildings):
    index = buildings.index
    aoi = shapely.union_all(index.footprints("EPSG:4326")[:2])
    pixels = render(plot.plot_index(index, aoi=aoi))
    assert not is_blank(pixels)
