"""Whatever a collate_fn builds from a batch, kept pixels stay intact while workers read on.

Each test runs real DataLoader workers over more batches than a worker has slots, keeps
every batch (or the part named), and only after the loop compares every kept chip with a
direct rasterio read of its window.
"""

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader, default_collate

import geochips
from geochips import ChipDataset, ChipIndex
from geochips.loading import slots

pytestmark = pytest.mark.slow

NODATA = 7919 + 40  # band 1 of position_values at pixel (0, 40): some chips have nodata


@pytest.fixture(params=[NODATA, None], ids=["valid", "no-valid"])
def dataset(request, make_scene):
    paths = [
        make_scene(height=96, width=96, count=1, blocksize=32, nodata=request.param)
        for _ in range(2)
    ]
    return ChipDataset(ChipIndex.build(paths, size=32, stride=8))


def read(dataset, chip_id):
    """The chip's pixels, read with rasterio (the oracle), as geochips widens them."""
    position = dataset.index.position(chip_id)
    scene = dataset.index.scenes[dataset.index.locate(position)[0]]
    w = dataset.index.window(position)
    with rasterio.open(scene.hrefs[0]) as src:
        pixels = src.read(window=Window(w.col_off, w.row_off, w.width, w.height))
    return pixels.astype("int32")


def check(dataset, chip_ids, images):
    """Compare every kept chip; report how many are wrong (all of them, not the first)."""
    wrong = [
        chip_id
        for chip_id, image in zip(chip_ids, images, strict=True)
        if not np.array_equal(np.asarray(image), read(dataset, chip_id))
    ]
    assert not wrong, f"{len(wrong)} of {len(chip_ids)} kept chips were overwritten"


def whole(batch):
    return batch


def run(dataset, collate_fn, context="fork", epochs=2, keep=whole):
    """``keep`` of every batch of ``epochs`` epochs, kept as it arrives: 2 x 54 batches."""
    loader = DataLoader(
        dataset,
        batch_size=3,
        shuffle=True,
        num_workers=2,
        collate_fn=collate_fn,
        multiprocessing_context=context,
        persistent_workers=True,
    )
    held = [keep(batch) for _ in range(epochs) for batch in loader]
    assert len(held) > 4 * slots.MAX_SLOTS
    return held


def mapping(tensor):
    """The inode and name of the file ``tensor``'s memory is mapped from (Linux)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, _, _, _, inode, *name = line.split()
        start, end = (int(a, 16) for a in span.split("-"))
        if start <= address < end:
            return int(inode), " ".join(name)
    raise AssertionError(f"address {address:#x} is not mapped")


def mapped_file(tensor):
    return mapping(tensor)[0]


def in_slot(tensor):
    """Whether ``tensor`` views a worker's slot itself (a lease: no copy on the way)."""
    return mapping(tensor)[1].startswith("/memfd:geochips-batch")


# -- collate_fns users write (module level: spawn pickles them) ---------------------------


def nested(samples):
    batch = geochips.collate(samples)
    batch["inputs"] = {"image": batch.pop("image")}
    return batch


def per_sample(samples):
    batch = geochips.collate(samples)
    pairs = zip(batch["image"], batch["chip_id"], strict=True)
    return [{"image": image, "chip_id": chip_id} for image, chip_id in pairs]


@dataclasses.dataclass
class Batch:
    image: torch.Tensor
    chip_id: list[str]


def as_dataclass(samples):
    batch = geochips.collate(samples)
    return Batch(image=batch["image"], chip_id=batch["chip_id"])


def dataclass_inside(samples):
    batch = geochips.collate(samples)
    batch["inputs"] = Batch(image=batch.pop("image"), chip_id=batch["chip_id"])
    return batch


def as_tuple(samples):
    batch = geochips.collate(samples)
    return batch["image"], batch["chip_id"]


class Pair(NamedTuple):
    image: torch.Tensor
    chip_id: list[str]


def as_namedtuple(samples):
    batch = geochips.collate(samples)
    return Pair(batch["image"], batch["chip_id"])


def first_two(samples):
    batch = geochips.collate(samples)
    return {"image": batch["image"][:2], "chip_id": batch["chip_id"][:2]}


def crop_inside(samples):
    batch = geochips.collate(samples)
    batch["image"] = batch["image"][:, :, 4:, 4:]  # a view, in place of the batch tensor
    return batch


def batch_and_view(samples):
    batch = geochips.collate(samples)
    return batch["image"][1:], batch  # a view before the batch in the same message


class Holder:
    """An object the layout knows nothing about, holding the batch tensor."""

    def __init__(self, image: torch.Tensor, chip_id: list[str]) -> None:
        self.image, self.chip_id = image, chip_id


def custom_object(samples):
    batch = geochips.collate(samples)
    batch["holder"] = Holder(batch.pop("image"), batch["chip_id"])
    return batch


class Previous:
    """A stateful collate_fn: returns the batch before this one beside this one."""

    def __init__(self) -> None:
        self.last: Any = None

    def __call__(self, samples):
        batch = geochips.collate(samples)
        out = {"now": batch, "before": self.last}
        self.last = batch
        return out


class PreviousImage:
    """Keeps the previous batch's image tensor (not the batch) and returns it later."""

    def __init__(self) -> None:
        self.last: Any = None

    def __call__(self, samples):
        batch = geochips.collate(samples)
        out = {"now": batch, "before": self.last}
        self.last = (batch["chip_id"], batch["image"])
        return out


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_a_nested_image_is_kept(dataset, context):
    held = run(dataset, nested, context=context, epochs=2 if context == "fork" else 1)
    check(
        dataset,
        [c for b in held for c in b["chip_id"]],
        [i for b in held for i in b["inputs"]["image"]],
    )


def test_only_the_nested_part_is_kept(dataset):
    held = run(dataset, nested, keep=lambda b: {"chip_id": b["chip_id"], "inputs": b["inputs"]})
    check(
        dataset,
        [c for b in held for c in b["chip_id"]],
        [i for b in held for i in b["inputs"]["image"]],
    )


def test_one_image_of_a_nested_batch_is_kept(dataset):
    held = run(dataset, nested, keep=lambda b: (b["chip_id"][1], b["inputs"]["image"][1]))
    check(dataset, [c for c, _ in held], [i for _, i in held])


def images(chip_ids, tensor):
    return list(zip(chip_ids, tensor, strict=True))


STRUCTURES = {  # collate_fn: the (chip id, image) pairs of one batch it returned
    "list of dicts": (per_sample, lambda b: [(s["chip_id"], s["image"]) for s in b]),
    "dataclass": (as_dataclass, lambda b: images(b.chip_id, b.image)),
    "dataclass in the batch": (
        dataclass_inside,
        lambda b: images(b["inputs"].chip_id, b["inputs"].image),
    ),
    "tuple": (as_tuple, lambda b: images(b[1], b[0])),
    "namedtuple": (as_namedtuple, lambda b: images(b.chip_id, b.image)),
    "object in the batch": (
        custom_object,
        lambda b: images(b["holder"].chip_id, b["holder"].image),
    ),
}


@pytest.mark.parametrize("structure", STRUCTURES)
def test_any_structure_keeps_its_images(dataset, structure):
    collate_fn, pairs_of = STRUCTURES[structure]
    pairs = [p for batch in run(dataset, collate_fn) for p in pairs_of(batch)]
    check(dataset, [c for c, _ in pairs], [i for _, i in pairs])


def test_part_of_a_batch_is_kept(dataset):
    held = run(dataset, first_two)
    check(
        dataset,
        [c for b in held for c in b["chip_id"]],
        [i for b in held for i in b["image"]],
    )


def test_a_crop_in_place_of_the_batch_tensor_is_kept(dataset):
    held = run(dataset, crop_inside)
    pairs = [p for b in held for p in images(b["chip_id"], b["image"])]
    wrong = [c for c, i in pairs if not np.array_equal(i.numpy(), read(dataset, c)[:, 4:, 4:])]
    assert not wrong, f"{len(wrong)} of {len(pairs)} kept crops were overwritten"


def test_a_view_sent_beside_its_batch_is_kept(dataset):
    views = run(dataset, batch_and_view, keep=lambda vb: (vb[1]["chip_id"][1:], vb[0]))
    check(dataset, [c for ids, _ in views for c in ids], [i for _, v in views for i in v])


def test_a_batch_the_worker_sends_again_is_kept(dataset):
    held = run(dataset, Previous())
    before = [b["before"] for b in held if b["before"] is not None]
    for batches in (before, [b["now"] for b in held]):
        check(
            dataset,
            [c for b in batches for c in b["chip_id"]],
            [i for b in batches for i in b["image"]],
        )


def test_an_image_the_worker_keeps_and_sends_later_is_kept(dataset):
    held = run(dataset, PreviousImage())
    before = [b["before"] for b in held if b["before"] is not None]
    now = [(b["now"]["chip_id"], b["now"]["image"]) for b in held]
    for pairs in (before, now):
        check(dataset, [c for ids, _ in pairs for c in ids], [i for _, im in pairs for i in im])


def torch_collate(samples):
    """torch's own collate of the samples __getitems__ read into one slot tensor."""
    return default_collate([{"image": s["image"], "chip_id": s["chip_id"]} for s in samples])


def test_torch_default_collate_of_slot_samples_is_kept(dataset):
    held = run(dataset, torch_collate)
    check(
        dataset,
        [c for b in held for c in b["chip_id"]],
        [i for b in held for i in b["image"]],
    )


def halved(sample):
    return {**sample, "image": sample["image"].float() / 2}


def test_transformed_nested_batches_are_kept(dataset):
    dataset.transform = halved  # samples read one by one, then stacked into a slot
    held = run(dataset, nested)
    check(
        dataset,
        [c for b in held for c in b["chip_id"]],
        [i.numpy() * 2 for b in held for i in b["inputs"]["image"]],
    )


def in_part(batch):
    """Delete part of a nested batch as it arrives: the image of every other batch."""
    if batch["chip_id"][0] < batch["chip_id"][-1]:
        del batch["inputs"]["image"]  # the rest of the batch stays
    else:
        batch.pop("valid", None)  # the image stays
        batch.pop("window")
    return batch


def test_batches_deleted_in_parts_keep_what_is_left(dataset):
    kept = [b for b in run(dataset, nested, keep=in_part) if "image" in b["inputs"]]
    check(
        dataset,
        [c for b in kept for c in b["chip_id"]],
        [i for b in kept for i in b["inputs"]["image"]],
    )


# -- the fast path still reuses -----------------------------------------------------------


@pytest.mark.parametrize("collate_fn", [geochips.collate, nested])
def test_dropped_batches_reuse_slots(dataset, collate_fn):
    loader = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=2, collate_fn=collate_fn)
    files, batches = set(), 0
    for _ in range(2):
        for batch in loader:
            image = batch["image"] if "image" in batch else batch["inputs"]["image"]
            check(dataset, batch["chip_id"], image)
            files.add(mapped_file(image))
            batches += 1
    assert batches > 4 * slots.MAX_SLOTS
    # Without reuse, a new file for every batch; each epoch starts new workers.
    assert len(files) <= 2 * 2 * slots.MAX_SLOTS


def counted(collate_fn):
    """Wrap ``collate_fn``: each batch also says how many slots its worker has created."""

    def collate_and_count(samples):
        return collate_fn(samples), slots.pool().allocated

    return collate_and_count


@pytest.mark.parametrize("collate_fn", [geochips.collate, nested, as_tuple, first_two])
def test_workers_create_few_slots_whatever_the_collate_fn_returns(dataset, collate_fn):
    # Batches dropped as they come: the lease ones come back, the others were copies.
    allocated = max(n for _, n in run(dataset, counted(collate_fn), keep=lambda b: (None, b[1])))
    assert allocated <= slots.MAX_SLOTS  # without reuse: one for each of its 54 batches


@pytest.mark.parametrize("collate_fn", [geochips.collate, nested])
def test_a_lease_reaches_the_main_process_without_a_copy(dataset, collate_fn):
    held = run(dataset, collate_fn, epochs=1)
    images = [b["image"] if "image" in b else b["inputs"]["image"] for b in held]
    assert all(map(in_slot, images))


def test_a_slot_tensor_sent_outside_a_lease_is_a_copy(dataset):
    held = run(dataset, as_tuple, epochs=1)
    assert not any(in_slot(image) for image, _ in held)  # torch's fresh shared memory


def die_on_chip_five(sample):
    if sample["chip_id"].endswith("/0/40/32x32"):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return sample


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_killed_worker_ends_the_epoch_with_an_error_not_a_hang(make_scene, context):
    # The worker dies holding batch slots; the main process must learn of it (torch checks
    # its workers every few seconds) and keep every batch it already has intact.
    path = make_scene(height=96, width=96, count=1, blocksize=32)
    dataset = ChipDataset(ChipIndex.build([path], size=32, stride=8), transform=die_on_chip_five)
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        collate_fn=geochips.collate,
        multiprocessing_context=context,
    )
    kept = []
    with pytest.raises(RuntimeError, match="DataLoader worker .* exited unexpectedly|killed"):
        for batch in loader:
            kept.append(batch)
    check(dataset, [c for b in kept for c in b["chip_id"]], [i for b in kept for i in b["image"]])
