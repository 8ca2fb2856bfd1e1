"""geochips.transforms: D4 applied jointly and exactly, checked against NumPy and rasterio."""

import pickle

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import xy
from torch.utils.data import DataLoader

import geochips
from geochips.transforms import (
    ELEMENTS,
    Compose,
    Dihedral,
    RandomDihedral,
    RandomFlip,
    RandomRotate90,
)

HEIGHT, WIDTH = 40, 50  # scene
SIZE = (12, 20)  # chips: not square, so rotations swap H and W
BOX = (2, 7, 3, 11)  # rows 2..7, cols 3..11 of a chip, inclusive: a rectangle to rasterise

# Independent oracles, from NumPy's own definitions of each named element.
ORACLES = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot180": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
    "hflip": lambda a: np.flip(a, -1),
    "vflip": lambda a: np.flip(a, -2),
    "transpose": lambda a: np.swapaxes(a, -2, -1),
    "antitranspose": lambda a: np.swapaxes(np.flip(a, (-2, -1)), -2, -1),
}


def rectangle(height, width):
    r0, r1, c0, c1 = BOX
    out = np.zeros((1, height, width), dtype=np.uint8)
    out[0, r0 : r1 + 1, c0 : c1 + 1] = 1
    return out


def box_of(raster):
    rows, cols = np.nonzero(raster[0])
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


@pytest.fixture
def scene(tmp_path):
    return geochips.testing.write_scene(
        tmp_path / "s.tif", height=HEIGHT, width=WIDTH, nodata=0, layout="striped"
    )


def dataset(path, size=SIZE, **kwargs):
    index = geochips.ChipIndex.build([path], size=size, edge="pad")
    return geochips.ChipDataset(index, **kwargs)


def labelled(sample):
    """The sample with mask, boxes and an instance raster, as labels will add them."""
    height, width = sample["image"].shape[-2:]
    out = dict(sample)
    out["mask"] = sample["image"][:1].long() % 7  # a function of the pixel values
    out["instance"] = torch.from_numpy(rectangle(height, width))
    r0, r1, c0, c1 = BOX
    out["boxes"] = torch.tensor(
        [[c0, r0, c1 + 1, r1 + 1], [0, 0, width, height]], dtype=torch.float32
    )
    out["labels"] = torch.tensor([3, 1])
    return out


@pytest.fixture
def sample(scene):
    ds = dataset(scene)
    # The last chip overhangs the scene (edge="pad"): its valid mask has False pixels.
    sample = labelled(ds[len(ds) - 1])
    assert not sample["valid"].all() and sample["valid"].any()
    return sample


@pytest.mark.parametrize("name", ELEMENTS)
@pytest.mark.parametrize("dtype", [None, "uint16", "float32"])
def test_every_element_moves_every_raster_key_as_numpy_does(scene, name, dtype):
    ds = dataset(scene, **({"dtype": dtype} if dtype else {}))
    sample = labelled(ds[len(ds) - 1])
    before = {k: v.clone() for k, v in sample.items() if isinstance(v, torch.Tensor)}
    out = Dihedral(name)(sample)
    for key in ("image", "valid", "mask", "instance"):
        expected = ORACLES[name](sample[key].numpy())
        assert out[key].dtype == sample[key].dtype
        np.testing.assert_array_equal(out[key].numpy(), expected, err_msg=key)
    assert out["dihedral"] == ELEMENTS.index(name)
    assert torch.equal(out["labels"], sample["labels"])
    for key, value in before.items():  # the input is untouched
        assert torch.equal(sample[key], value), key


@pytest.mark.parametrize("k", range(8))
def test_boxes_are_the_boxes_of_the_moved_rectangle(sample, k):
    out = Dihedral(k)(sample)
    moved = ORACLES[ELEMENTS[k]](rectangle(*SIZE))
    height, width = moved.shape[-2:]
    assert tuple(out["image"].shape[-2:]) == (height, width)
    assert out["boxes"].tolist() == [box_of(moved), [0, 0, width, height]]
    assert out["boxes"].tolist()[0] == box_of(out["instance"].numpy())


@pytest.mark.parametrize("k", range(8))
def test_inverse_restores_the_sample_exactly(sample, k):
    back = Dihedral(k).inverse()(Dihedral(k)(sample))
    assert back.keys() == sample.keys() | {"dihedral"} and back["dihedral"] == 0
    for key, value in sample.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(back[key], value) and back[key].dtype == value.dtype, key
        else:
            assert back[key] == value, key


def test_composition_is_the_group_law(sample):
    for a in range(8):
        for b in range(8):
            twice = Dihedral(b)(Dihedral(a)(sample))
            once = Dihedral(a).then(Dihedral(b))(sample)
            assert twice["dihedral"] == once["dihedral"] == Dihedral(a).then(Dihedral(b)).k
            for key in ("image", "valid", "mask", "boxes"):
                assert torch.equal(twice[key], once[key]), (a, b, key)
            assert twice["transform"] == once["transform"]
    composed = Compose([Dihedral("hflip"), Dihedral("rot90")])(sample)
    assert composed["dihedral"] == ELEMENTS.index("transpose")


@pytest.mark.parametrize("k", range(8))
def test_the_transform_maps_each_new_pixel_to_the_ground_it_shows(scene, k):
    # Pixel values encode their scene position: (band 1) 7919 + row * WIDTH + col.
    ds = dataset(scene)
    sample = ds[1]  # inside the scene: every pixel decodes to its scene position
    out = Dihedral(k)(sample)
    with rasterio.open(scene) as src:
        scene_transform = src.transform
    value = out["image"][0].numpy().astype(np.int64) - 7919
    rows, cols = np.divmod(value, WIDTH)
    new_rows, new_cols = np.indices(value.shape)
    got = np.array(xy(out["transform"], new_rows.ravel(), new_cols.ravel()))
    expected = np.array(xy(scene_transform, rows.ravel(), cols.ravel()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    height, width = out["image"].shape[-2:]
    xs, ys = xy(out["transform"], [0, 0, height, height], [0, width, 0, width], offset="ul")
    assert out["bounds"] == sample["bounds"]
    bounds = (min(xs), min(ys), max(xs), max(ys))  # the new grid's corners
    np.testing.assert_allclose(bounds, sample["bounds"], rtol=0, atol=1e-6)


def batch_of(samples):
    return geochips.collate([labelled(s) for s in samples])


@pytest.mark.parametrize("k", range(8))
def test_a_batch_gets_one_element_for_all(scene, k):
    ds = dataset(scene)
    samples = [ds[i] for i in range(4)]
    out = Dihedral(k)(batch_of(samples))
    assert out["dihedral"] == [k] * 4
    alone = [Dihedral(k)(labelled(s)) for s in samples]
    for key in ("image", "valid", "mask"):  # stacked by collate
        assert torch.equal(out[key], torch.stack([a[key] for a in alone])), key
    for i, one in enumerate(alone):  # listed by collate
        assert torch.equal(out["boxes"][i], one["boxes"])
        assert torch.equal(out["instance"][i], one["instance"])
    assert out["transform"] == [a["transform"] for a in alone]


def test_per_sample_elements_in_a_batch_of_square_chips(tmp_path):
    path = geochips.testing.write_scene(
        tmp_path / "sq.tif", height=32, width=32, nodata=0, blocksize=16
    )
    ds = geochips.ChipDataset(geochips.ChipIndex.build([path], size=8))
    samples = [ds[i] for i in range(16)]
    aug = RandomDihedral(per_sample=True, generator=torch.Generator().manual_seed(0))
    out = aug(batch_of(samples))
    assert len(set(out["dihedral"])) > 1
    for i, (k, s) in enumerate(zip(out["dihedral"], samples, strict=True)):
        one = Dihedral(k)(labelled(s))
        for key in ("image", "valid", "mask", "instance"):
            assert torch.equal(out[key][i], one[key]), (i, key)
        assert (
            torch.equal(out["boxes"][i], one["boxes"]) and out["transform"][i] == one["transform"]
        )
    back = geochips.collate(
        [
            Dihedral(k).inverse()({key: out[key][i] for key in ("image", "valid")})
            for i, k in enumerate(out["dihedral"])
        ]
    )
    assert torch.equal(back["image"], torch.stack([s["image"] for s in samples]))


def test_per_sample_rotations_of_non_square_chips_are_refused(scene):
    ds = dataset(scene)
    batch = batch_of([ds[0], ds[1]])
    with pytest.raises(geochips.InvalidParameterError, match="12x20 chips"):
        RandomRotate90(per_sample=True, generator=torch.Generator().manual_seed(2))(batch)
    flips = RandomFlip(p=0.5, direction="vertical", per_sample=True)(batch)
    assert flips["image"].shape == batch["image"].shape


def test_random_elements_follow_their_generator_and_choices(sample):
    def draws(transform, n=40):
        return [transform(sample)["dihedral"] for _ in range(n)]

    same = [draws(RandomDihedral(generator=torch.Generator().manual_seed(5))) for _ in range(2)]
    assert same[0] == same[1] and set(same[0]) == set(range(8))
    assert draws(RandomDihedral(generator=torch.Generator().manual_seed(6))) != same[0]
    torch.manual_seed(1)
    first = draws(RandomDihedral())
    torch.manual_seed(1)
    assert draws(RandomDihedral()) == first
    assert set(draws(RandomFlip(p=1.0))) == {ELEMENTS.index("hflip")}
    assert set(draws(RandomFlip(p=0.0, direction="vertical"))) == {0}
    assert set(draws(RandomFlip(direction="vertical"))) == {0, ELEMENTS.index("vflip")}
    assert set(draws(RandomRotate90())) == {0, 1, 2, 3}
    assert set(draws(RandomDihedral(["transpose"]))) == {5}


def test_no_boxes_and_no_georeference_pass_through():
    out = Dihedral("rot90")(
        {"image": torch.zeros(2, 4, 6), "boxes": torch.zeros(0, 4), "transform": None}
    )
    assert out["image"].shape == (2, 6, 4) and out["boxes"].shape == (0, 4)
    assert out["transform"] is None and out["dihedral"] == 1


def test_bad_input_is_refused_with_what_to_do(sample):
    with pytest.raises(geochips.InvalidParameterError, match="one of identity, rot90"):
        Dihedral("rotate")
    with pytest.raises(geochips.InvalidParameterError, match="0-7"):
        Dihedral(8)
    with pytest.raises(geochips.InvalidParameterError, match="p must be a probability"):
        RandomFlip(p=2)
    with pytest.raises(geochips.InvalidParameterError, match="one per element"):
        RandomDihedral(["hflip"], weights=[1, 1])
    odd = {**sample, "coarse": torch.zeros(1, 6, 10)}
    with pytest.raises(geochips.InvalidParameterError, match=r"'coarse' \(1, 6, 10\).*chip '"):
        Dihedral(1)(odd)
    with pytest.raises(geochips.InvalidParameterError, match=r"'image' \(C, H, W\)"):
        Dihedral(1)(sample["image"])


def test_transforms_pickle_and_run_inside_chip_dataset(scene):
    ds = dataset(scene, transform=Compose([RandomFlip(), RandomRotate90()]))
    again = pickle.loads(pickle.dumps(ds))
    plain = dataset(scene)
    for i in range(len(ds)):
        out = again[i]
        assert torch.equal(out["image"], Dihedral(out["dihedral"])(plain[i])["image"])


# -- DataLoader workers: repeatable from the loader's seed ---------------------------------


def epoch(ds, seed, context):
    loader = DataLoader(
        ds,
        batch_size=3,
        shuffle=False,  # chip -> element then depends on the augmentation seeds alone
        num_workers=2,
        multiprocessing_context=context,
        collate_fn=geochips.collate,
        generator=torch.Generator().manual_seed(seed),
    )
    out = {}
    for batch in loader:
        for i, (chip, k) in enumerate(zip(batch["chip_id"], batch["dihedral"], strict=True)):
            out[chip] = (k, batch["image"][i].clone(), batch["valid"][i].clone())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
@pytest.mark.parametrize("generator", [False, True])
def test_workers_repeat_their_augmentations_from_the_loader_seed(scene, context, generator):
    gen = torch.Generator().manual_seed(123) if generator else None
    # Square chips: a batch of chips rotated one way or another still stacks.
    ds = dataset(scene, size=16, transform=RandomDihedral(generator=gen))
    plain = dataset(scene, size=16)
    first, again, other = (epoch(ds, seed, context) for seed in (7, 7, 8))
    assert set(first) == {plain.index.chip_id(i) for i in range(len(plain))}
    assert {c: v[0] for c, v in first.items()} == {c: v[0] for c, v in again.items()}
    assert {c: v[0] for c, v in first.items()} != {c: v[0] for c, v in other.items()}
    for chip, (k, image, valid) in first.items():  # and the pixels are the element's
        expected = Dihedral(k)(plain[chip])
        assert torch.equal(image, expected["image"]) and torch.equal(valid, expected["valid"])


# -- Recipes (README "Augmentation"): kornia on batches, torchvision v2 on samples -----------


def encoded(n=4, size=16):
    """A batch whose image encodes (row + 1, col + 1): valid and mask are functions of it."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.stack([rows + 1, cols + 1]).float().expand(n, 2, size, size).clone()
    return image, valid_of(image), mask_of(image)


def valid_of(image):
    return ((image[:, :1] + image[:, 1:2]) % 3 != 0).bool()


def mask_of(image):
    return ((image[:, :1] * 7 + image[:, 1:2]) % 5).long()


@pytest.mark.parametrize("which", ["hflip", "vflip", "rot90"])
def test_kornia_moves_valid_and_mask_with_the_image_exactly(which):
    K = pytest.importorskip("kornia.augmentation")
    flips = {
        "hflip": K.RandomHorizontalFlip(p=1.0),
        "vflip": K.RandomVerticalFlip(p=1.0),
        "rot90": K.RandomRotation90(times=(1, 3), p=1.0),
    }
    aug = K.AugmentationSequential(flips[which], data_keys=["input", "mask", "mask"])
    image, valid, mask = encoded()
    out_image, out_valid, out_mask = aug(image, valid, mask)
    assert out_valid.dtype == torch.bool and out_mask.dtype == torch.int64
    assert not torch.equal(out_valid, valid) and not torch.equal(out_mask, mask)
    # A 90-degree rotation is a resampling in kornia: exact up to float rounding.
    out_image = out_image.round()
    assert torch.equal(out_valid, valid_of(out_image))
    assert torch.equal(out_mask, mask_of(out_image))
    # kornia's dict mode leaves 'valid' behind: the reason the recipe names its data_keys.
    left = K.AugmentationSequential(flips[which], data_keys=None)(
        {"image": image, "valid": valid, "mask": mask}
    )
    assert torch.equal(left["valid"], valid) and not torch.equal(left["mask"], mask)


def test_kornia_affine_keeps_valid_and_mask_on_the_pixels_they_came_from():
    K = pytest.importorskip("kornia.augmentation")
    torch.manual_seed(0)
    aug = K.AugmentationSequential(
        K.RandomHorizontalFlip(),
        K.RandomAffine(degrees=30, translate=(0.2, 0.2), p=1.0),
        data_keys=["input", "mask", "mask"],
    )
    image, valid, mask = encoded(n=8, size=32)
    out_image, out_valid, out_mask = aug(image, valid, mask)
    out_mask[~out_valid] = 255  # the recipe: outside pixels brought in are ignore_index
    # Bilinear resampling of the (row, col) image gives each output pixel's source position;
    # nearest resampling of valid and mask took the pixel nearest to it.
    rows, cols = out_image[:, 0] - 1, out_image[:, 1] - 1
    far_from_ties = ((rows - rows.floor() - 0.5).abs() > 0.1) & (
        (cols - cols.floor() - 0.5).abs() > 0.1
    )
    inside = (rows >= 1) & (rows <= 30) & (cols >= 1) & (cols <= 30) & far_from_ties
    source = torch.stack([rows.round() + 1, cols.round() + 1], dim=1)
    assert inside.sum() > 0.3 * inside.numel()
    agree_valid = out_valid[:, 0][inside] == valid_of(source)[:, 0][inside]
    expected_mask = torch.where(valid_of(source), mask_of(source), 255)[:, 0][inside]
    agree_mask = out_mask[:, 0][inside] == expected_mask
    # Measured with kornia 0.9: 1-2 % of those pixels take a neighbour of that nearest
    # pixel (a sub-pixel offset between its bilinear and nearest paths); a misaligned mask
    # (not moved, or moved another way) agrees on far fewer.
    assert agree_valid.float().mean() > 0.97 and agree_mask.float().mean() > 0.97
    outside = (out_image == 0).all(dim=1)  # no source pixel: padding
    assert outside.any() and not out_valid[:, 0][outside].any()
    assert (out_mask[:, 0][outside] == 255).all()


def test_torchvision_v2_moves_masks_wrapped_as_masks():
    pytest.importorskip("torchvision")
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    image, valid, mask = encoded(n=1)
    aug = v2.RandomHorizontalFlip(p=1.0)
    out_image, out_valid, out_mask = aug(
        tv_tensors.Image(image[0]), tv_tensors.Mask(valid[0]), tv_tensors.Mask(mask[0])
    )
    assert torch.equal(out_valid, valid_of(out_image[None])[0])
    assert torch.equal(out_mask, mask_of(out_image[None])[0])
