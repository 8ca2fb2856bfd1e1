"""Batch slots that DataLoader workers reuse: never rewritten while the main process holds
any tensor of the batch in them."""

import collections
import copy
import gc
import io
import multiprocessing
import pickle
import weakref
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geochips import ChipDataset, ChipIndex, collate
from geochips.loading import leases, slots
from geochips.testing import position_values

NODATA = 7919 + 40  # band 1 of position_values at pixel (0, 40): some chips have nodata


@pytest.fixture
def dataset(make_scene):
    paths = [make_scene(height=96, width=96, count=1, blocksize=32, nodata=NODATA)]
    return ChipDataset(ChipIndex.build(paths, size=32, stride=8))


def expected(dataset, chip_id):
    window = dataset.index.window(dataset.index.position(chip_id))
    image = position_values(1, 96, 96, "uint16").astype("int32")[(slice(None), *window.slices())]
    return image, image != NODATA


def check(dataset, chip_ids, images, valids):
    for chip_id, image, valid in zip(chip_ids, images, valids, strict=True):
        want_image, want_valid = expected(dataset, chip_id)
        np.testing.assert_array_equal(np.asarray(image), want_image)
        np.testing.assert_array_equal(np.asarray(valid), want_valid)


def loader(dataset, **kwargs):
    kwargs.setdefault("collate_fn", collate)
    return DataLoader(
        dataset, batch_size=3, shuffle=True, num_workers=2, persistent_workers=True, **kwargs
    )


def epochs(loader, count=3):
    """The batches of ``count`` epochs of one loader (its workers persist): 81 batches."""
    for _ in range(count):
        yield from loader


def mapped_file(tensor):
    """The inode of the shared-memory file ``tensor``'s memory is mapped from (Linux)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, _, _, _, inode, *_ = line.split()
        start, end = (int(a, 16) for a in span.split("-"))
        if start <= address < end:
            return int(inode)
    raise AssertionError(f"address {address:#x} is not mapped")


# -- the torch behaviour slots rely on (public, but pinned here) ---------------------------


def test_a_storage_from_numpy_holds_the_array_while_any_view_lives():
    """A slot's hold (worker) and a lease (main process) are NumPy arrays held this way."""
    hold = np.zeros(4096, np.uint8)
    watch = weakref.ref(hold)
    storage = torch.from_numpy(hold).untyped_storage()
    tensor = torch.empty(0, dtype=torch.int32).set_(storage, 16, (4, 4), (4, 1))
    assert tensor._base is None  # collate tells slot tensors from stacked rows by _base
    del hold, storage
    view = tensor[1:]
    array = view.numpy()
    again = torch.from_numpy(array)
    del tensor, view, array
    gc.collect()
    assert watch() is not None
    del again
    gc.collect()
    assert watch() is None


def test_torch_copies_a_tensor_on_unshared_memory_when_it_pickles_it():
    """So a slot tensor torch sends itself reaches the other process as a copy."""
    hold = np.zeros(4096, np.uint8)
    watch = weakref.ref(hold)
    tensor = torch.from_numpy(hold)[64:80].view(torch.int32)
    tensor.fill_(5)
    got = received(tensor)
    hold[:] = 1  # the memory torch was given is rewritten
    assert got.tolist() == [5] * 4 and tensor.tolist() == [5] * 4  # both moved to a copy
    del hold
    gc.collect()
    assert watch() is None  # and the original memory is no longer held


def test_torch_pickler_uses_the_registered_reducer_of_a_dict_subclass():
    slot, batch = slot_batch()
    assert ForkingPickler(io.BytesIO()).dispatch_table[leases.SlotBatch] is leases._lend
    assert type(pickle.loads(pickle.dumps(batch))) is dict  # plain pickle: by value
    assert slot.sent == 0


# -- one process: the lease and the header count ------------------------------------------


def slot_batch():
    specs = [((2, 1, 4, 4), torch.int32), ((2, 1, 4, 4), torch.bool)]
    slot = slots.Slot(slots.size(specs))
    image, valid = slot.tensors(specs)
    image.copy_(torch.arange(32, dtype=torch.int32).reshape(2, 1, 4, 4))
    valid.fill_(True)
    return slot, leases.SlotBatch({"image": image, "valid": valid, "chip_id": ["a", "b"]}, slot)


def received(obj):
    """``obj`` as the main process gets it from a worker (torch's pickler, fd passing)."""
    return pickle.loads(ForkingPickler.dumps(obj))


def overwrite(slot):
    """Reuse the slot as the worker would, with values no batch had."""
    assert slot.reusable()
    slot.tensors([((slot.nbytes - slots.HEADER,), torch.uint8)])[0].fill_(255)


def test_a_slot_is_free_once_every_tensor_and_array_of_its_batch_is_gone():
    slot, batch = slot_batch()
    got = received(batch)
    del batch
    assert type(got) is dict and got["chip_id"] == ["a", "b"]
    assert got["image"].dtype == torch.int32 and got["valid"].dtype == torch.bool
    np.testing.assert_array_equal(got["image"].numpy().ravel(), np.arange(32))
    view, array = got["image"][1, :, 2:], got["valid"].numpy()
    del got
    gc.collect()
    assert not slot.reusable()  # a view of the image is alive
    del view
    gc.collect()
    assert not slot.reusable()  # a NumPy array of the mask is alive
    del array
    gc.collect()
    assert slot.reusable()


def test_a_copy_does_not_hold_the_slot():
    slot, batch = slot_batch()
    got = received(batch)
    del batch
    kept = got["image"].clone(), got["valid"].numpy().copy()
    del got
    gc.collect()
    overwrite(slot)
    np.testing.assert_array_equal(kept[0].numpy().ravel(), np.arange(32))


def test_a_batch_moved_on_to_shared_memory_keeps_its_values_and_frees_the_slot():
    slot, batch = slot_batch()
    got = received(batch)
    del batch
    image = got["image"]
    image.share_memory_()  # as when the main process sends the batch on to another process
    del got
    gc.collect()
    overwrite(slot)
    np.testing.assert_array_equal(image.numpy().ravel(), np.arange(32))


def test_a_tensor_the_worker_still_holds_keeps_the_slot():
    slot, batch = slot_batch()
    image = batch["image"]
    del batch
    assert not slot.reusable()
    del image
    assert slot.reusable()  # never sent: nothing but this process could see it


def test_tensors_anywhere_in_the_batch_are_leased_wherever_they_sit():
    slot, batch = slot_batch()
    image = batch.pop("image")
    batch["inputs"] = {"image": image, "crop": [image[:, :, 1:3, ::2]]}
    batch["pair"] = Pair(image[1], batch["chip_id"])
    batch["same"] = image  # twice in the batch: one tensor in the main process
    del image
    got = received(batch)
    del batch
    gc.collect()
    assert got["same"] is got["inputs"]["image"]
    kept = got["pair"].image
    crop = got["inputs"]["crop"][0]
    assert crop.stride() == (16, 16, 4, 2)
    del got
    gc.collect()
    assert not slot.reusable()
    del kept, crop
    gc.collect()
    assert slot.reusable()


Pair = collections.namedtuple("Pair", "image chip_id")


def test_a_slot_tensor_sent_outside_its_batch_is_a_copy():
    slot, batch = slot_batch()
    view, got = received((batch["image"][1], batch))  # the view first, then the batch
    del batch
    gc.collect()
    assert slot.reusable()  # the view was copied; the batch's tensors moved with it
    overwrite(slot)
    np.testing.assert_array_equal(view.numpy().ravel(), np.arange(16, 32))
    np.testing.assert_array_equal(got["image"].numpy().ravel(), np.arange(32))


def test_a_batch_sent_twice_needs_both_leases_freed():
    slot, batch = slot_batch()
    first, second = received(batch), received(batch)
    del batch
    assert slot.sent == 2
    del first
    gc.collect()
    assert not slot.reusable()
    del second
    gc.collect()
    assert slot.reusable()


def drop(box):
    box.clear()
    gc.collect()


def test_a_forked_child_dropping_its_copy_of_a_batch_frees_nothing():
    slot, batch = slot_batch()
    box = [received(batch)]
    del batch
    child = multiprocessing.get_context("fork").Process(target=drop, args=(box,))
    child.start()
    child.join()
    assert child.exitcode == 0
    assert not slot.reusable()  # the batch in this process is still alive
    box.clear()
    gc.collect()
    assert slot.reusable()


def test_copies_in_the_worker_take_no_lease():
    slot, batch = slot_batch()
    shallow, deep = copy.copy(batch), copy.deepcopy(batch)
    assert type(shallow) is dict and shallow["image"] is batch["image"]
    assert deep["image"].data_ptr() != batch["image"].data_ptr()
    del shallow, deep, batch
    gc.collect()
    assert slot.sent == 0 and slot.reusable()


def test_the_pool_reuses_free_slots_and_forgets_the_oldest():
    pool = slots.Pool()
    specs = [((3, 8), torch.uint16)]
    first = pool.tensors(specs)[0]
    slot = pool.find(first)
    got = received(leases.SlotBatch({"image": first}, slot))
    del first
    assert not slot.reusable()  # the main process holds the batch
    del got
    gc.collect()
    reused = pool.tensors(specs)[0]
    assert pool.find(reused) is slot and pool.allocated == 1
    held = [pool.tensors(specs)[0] for _ in range(slots.MAX_SLOTS)]  # all busy
    assert len(pool.slots) == slots.MAX_SLOTS and slot not in pool.slots
    assert len({t.data_ptr() for t in held}) == slots.MAX_SLOTS


def test_the_pool_gives_back_slots_left_idle():
    pool = slots.Pool()
    specs = [((3, 8), torch.uint16)]
    burst = [pool.tensors(specs)[0] for _ in range(4)]  # four batches held at once
    assert len(pool.slots) == 4
    del burst
    for _ in range(slots.IDLE - 4):  # one batch at a time: one slot is enough
        pool.tensors(specs)
    assert len(pool.slots) == 4  # not yet given back: a burst may come again
    for _ in range(4):
        pool.tensors(specs)
    assert len(pool.slots) == 1 and pool.allocated == 4


def test_the_pool_keeps_the_slots_a_steady_run_needs():
    # Three batches in flight, all of them freed at once (an epoch's end), three again.
    pool = slots.Pool()
    specs = [((3, 8), torch.uint16)]
    for _ in range(3):
        in_flight = [pool.tensors(specs)[0] for _ in range(3)]
        for _ in range(slots.IDLE // 2):
            in_flight = [*in_flight[1:], pool.tensors(specs)[0]]
        del in_flight
    assert pool.allocated == 4


# -- real DataLoader workers ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_held_batches_keep_their_values_while_workers_read_on(dataset, context):
    held = list(epochs(loader(dataset, multiprocessing_context=context)))
    assert len(held) > 4 * slots.MAX_SLOTS
    for batch in held:
        check(dataset, batch["chip_id"], batch["image"], batch["valid"])


@pytest.mark.slow
def test_views_and_arrays_outlive_their_batches(dataset):
    ids, images, valids = [], [], []
    for batch in epochs(loader(dataset)):
        ids.append(batch["chip_id"][1])
        images.append(batch["image"][1])  # a view: holds the slot
        valids.append(batch["valid"].numpy()[1])
    check(dataset, ids, images, valids)


@pytest.mark.slow
def test_workers_reuse_slots_once_batches_are_dropped(dataset):
    files, batches = set(), 0
    for batch in epochs(loader(dataset)):
        check(dataset, batch["chip_id"], batch["image"], batch["valid"])
        files.add(mapped_file(batch["image"]))
        batches += 1
    assert batches > 4 * slots.MAX_SLOTS
    assert len(files) <= 2 * slots.MAX_SLOTS  # without reuse: a new file for every batch


def halved(sample):
    return {**sample, "image": sample["image"].float() / 2}


@pytest.mark.slow
def test_transformed_samples_are_stacked_into_reused_slots(dataset):
    dataset.transform = halved  # samples are read one by one, then stacked by collate
    held, files = collections.deque(maxlen=3), set()
    for batch in epochs(loader(dataset)):
        assert batch["image"].dtype == torch.float32
        files.add(mapped_file(batch["image"]))
        held.append(batch)
        for kept in held:  # the last three batches, while workers read on
            images = [np.asarray(image) * 2 for image in kept["image"]]
            check(dataset, kept["chip_id"], images, kept["valid"])
    assert len(files) <= 2 * slots.MAX_SLOTS


@pytest.mark.slow
def test_opting_out_gives_workers_plain_memory(dataset, monkeypatch):
    monkeypatch.setenv("GEOCHIPS_REUSE_BATCH_MEMORY", "0")  # inherited by the workers
    files = set()
    for batch in epochs(loader(dataset, multiprocessing_context="fork"), count=1):
        assert type(batch) is dict
        check(dataset, batch["chip_id"], batch["image"], batch["valid"])
        files.add(mapped_file(batch["image"]))
    # A file for each batch: torch moves each batch to fresh shared memory.
    assert len(files) == 27


def rebuilt(samples):
    return {**collate(samples)}  # the batch's tensors reach the main process as tensors


@pytest.mark.slow
def test_a_collate_fn_that_builds_its_own_dict_gets_batches_that_stay_intact(dataset):
    held = list(epochs(loader(dataset, collate_fn=rebuilt)))
    for batch in held:
        check(dataset, batch["chip_id"], batch["image"], batch["valid"])
