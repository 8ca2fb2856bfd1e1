import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scenes import scene_header
from torch.utils.data import DataLoader, DistributedSampler

import geochips
from geochips import BlockShuffleSampler, ChipDataset, ChipIndex
from geochips.errors import InvalidParameterError

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


def block_keys(index, order, block):
    return [
        (
            int(index.column("scene")[p]),
            index.column("row_off")[p] // block,
            index.column("col_off")[p] // block,
        )
        for p in order
    ]


@pytest.fixture
def overlapping(make_scene):
    paths = [make_scene(height=80, width=96, blocksize=16) for _ in range(2)]
    return paths, ChipIndex.build(paths, size=16, stride=8)


def test_every_chip_once_block_by_block(overlapping):
    _, index = overlapping
    sampler = BlockShuffleSampler(index, block=32, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(index))) and len(sampler) == len(index)
    keys = block_keys(index, order, 32)
    runs = 1 + sum(a != b for a, b in zip(keys, keys[1:], strict=False))
    assert runs == len(set(keys))  # each block's chips come together
    assert order != sorted(order)  # shuffled, not the index order


def test_order_depends_on_seed_and_epoch_only(overlapping):
    _, index = overlapping
    a, b = BlockShuffleSampler(index, seed=1), BlockShuffleSampler(index, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)
    assert list(BlockShuffleSampler(index, seed=2)) != first


def test_a_dataloader_with_workers_serves_every_chip_correctly(overlapping):
    paths, index = overlapping
    dataset = ChipDataset(index)
    loader = DataLoader(
        dataset,
        batch_size=5,
        sampler=BlockShuffleSampler(index, block=(32, 48)),
        num_workers=2,
        collate_fn=geochips.collate,
    )
    arrays = []
    for path in paths:
        with rasterio.open(path) as src:
            arrays.append(src.read())
    scene_of = {s.id: k for k, s in enumerate(index.scenes)}
    seen = []
    for batch in loader:
        for image, scene, window in zip(
            batch["image"], batch["scene_id"], batch["window"], strict=True
        ):
            rows, cols = window.slices()
            np.testing.assert_array_equal(image.numpy(), arrays[scene_of[scene]][:, rows, cols])
        seen += batch["chip_id"]
    assert sorted(seen) == sorted(index.chip_ids)


def test_padded_edges_and_an_empty_index(make_scene):
    index = ChipIndex.build([make_scene(height=40, width=50)], size=16, stride=12, edge="pad")
    assert sorted(BlockShuffleSampler(index, block=16)) == list(range(len(index)))
    assert list(BlockShuffleSampler(index[:0])) == []


@pytest.mark.parametrize("block", [0, -5, (16, 0), 2.5, True])
def test_bad_blocks_are_refused(overlapping, block):
    with pytest.raises(InvalidParameterError, match="block must be a positive int"):
        BlockShuffleSampler(overlapping[1], block=block)


def test_it_takes_an_index(overlapping):
    with pytest.raises(InvalidParameterError, match=r"takes a ChipIndex \(dataset.index\)"):
        BlockShuffleSampler(ChipDataset(overlapping[1]))


# -- ranks ------------------------------------------------------------------------------


def locality(order, blocks):
    """Fraction of consecutive chips of ``order`` that lie in the same block."""
    if len(order) < 2:
        return 1.0
    return sum(blocks[a] == blocks[b] for a, b in zip(order, order[1:], strict=False)) / (
        len(order) - 1
    )


def shares(index, replicas, **kwargs):
    samplers = [
        BlockShuffleSampler(index, num_replicas=replicas, rank=r, **kwargs) for r in range(replicas)
    ]
    return samplers, [list(s) for s in samplers]


SCENES = st.lists(st.tuples(st.integers(8, 200), st.integers(8, 200)), min_size=1, max_size=4)


def header_index(sides, size, stride):
    scenes = [scene_header(f"s{k}", h, w) for k, (h, w) in enumerate(sides)]
    return ChipIndex.from_scenes(scenes, size=size, stride=stride)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    sides=SCENES,
    stride=st.integers(2, 16),
    block=st.integers(8, 96),
    replicas=st.integers(1, 7),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 1000),
)
def test_ranks_share_every_chip_once_in_equal_runs_of_whole_blocks(
    sides, stride, block, replicas, seed, epoch
):
    index = header_index(sides, 8, stride)
    n = len(index)
    samplers, _ = shares(index, replicas, block=block, seed=seed)
    for s in samplers:
        s.set_epoch(epoch)
    runs = [list(s) for s in samplers]
    # Equal lengths, as DistributedSampler: ceil(n / W) on every rank, so DDP never waits.
    assert {len(r) for r in runs} == {-(-n // replicas)}
    assert all(len(s) == len(r) for s, r in zip(samplers, runs, strict=True))
    # Every chip, each on one rank only; the padding (< W chips) repeats a rank's own last
    # chip, or with fewer chips than ranks, a chip of the ranks before.
    assert set().union(*map(set, runs)) == set(range(n))
    assert sum(len(r) for r in runs) - n < replicas
    own = [list(dict.fromkeys(r)) for r in runs] if n >= replicas else runs[:n]
    assert sum(len(d) for d in own) == n
    if n >= replicas:
        for r, d in zip(runs, own, strict=True):
            assert r[len(d) :] == [d[-1]] * (len(r) - len(d))
    # Every rank's view of the partition is the same: the runs, in rank order, are the
    # epoch's order of all chips.
    assert [p for d in own for p in d] == samplers[0].epoch_order().tolist()
    # Block by block within each rank: each block is one run of consecutive chips.
    keys = block_keys(index, range(n), block)
    for r in runs:
        seen = [keys[p] for p in r]
        changes = 1 + sum(a != b for a, b in zip(seen, seen[1:], strict=False)) if r else 0
        assert changes == len(set(seen))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(sides=SCENES, replicas=st.integers(1, 7), seed=st.integers(0, 1000))
def test_drop_last_gives_floor_chips_to_every_rank_without_repeats(sides, replicas, seed):
    index = header_index(sides, 8, 8)
    n = len(index)
    _, runs = shares(index, replicas, block=32, seed=seed, drop_last=True)
    assert {len(r) for r in runs} == {n // replicas}
    flat = [p for r in runs for p in r]
    assert len(set(flat)) == len(flat) == replicas * (n // replicas)


@pytest.fixture(scope="module")
def big_blocks():
    """Four 512 x 512 scenes, a 32/16 grid: 961 chips a scene in blocks of up to 64."""
    scenes = [scene_header(f"s{k}", 512, 512) for k in range(4)]
    return ChipIndex.from_scenes(scenes, size=32, stride=16)


@pytest.mark.parametrize("replicas", [1, 2, 3, 8])
def test_locality_is_kept_on_every_rank(big_blocks, replicas):
    keys = block_keys(big_blocks, range(len(big_blocks)), 128)
    _, runs = shares(big_blocks, replicas, block=128, seed=5)
    for r in runs:
        assert locality(r, keys) > 0.95
    # The control: the same chips dealt by DistributedSampler (a shuffle) lose it.
    plain = DistributedSampler(range(len(big_blocks)), num_replicas=replicas, rank=0, seed=5)
    assert locality(list(plain), keys) < 0.1


@pytest.mark.parametrize("replicas", [2, 3])
def test_order_depends_on_seed_and_epoch_only_on_every_rank(big_blocks, replicas):
    a, first = shares(big_blocks, replicas, block=128, seed=1)
    assert shares(big_blocks, replicas, block=128, seed=1)[1] == first
    assert shares(big_blocks, replicas, block=128, seed=2)[1] != first
    for s in a:
        s.set_epoch(1)
    second = [list(s) for s in a]
    assert all(x != y for x, y in zip(first, second, strict=True))
    assert set().union(*second) == set().union(*first) == set(range(len(big_blocks)))
    # Blocks change rank from one epoch to the next.
    keys = block_keys(big_blocks, range(len(big_blocks)), 128)
    assert {keys[p] for p in first[0]} != {keys[p] for p in second[0]}


def test_one_rank_is_the_whole_order(big_blocks):
    sampler = BlockShuffleSampler(big_blocks, block=128, seed=3)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)  # no process group here
    sampler.set_epoch(4)
    assert list(sampler) == sampler.epoch_order().tolist()


def test_without_shuffle_blocks_and_chips_come_in_index_order(big_blocks):
    keys = block_keys(big_blocks, range(len(big_blocks)), 128)
    samplers, runs = shares(big_blocks, 3, block=128, shuffle=False)
    samplers[0].set_epoch(9)
    assert list(samplers[0]) == runs[0]
    flat = list(dict.fromkeys(p for r in runs for p in r))
    assert flat == sorted(range(len(big_blocks)), key=lambda p: (keys[p], p))


def test_fewer_chips_than_ranks_still_gives_one_to_each(make_scene):
    index = ChipIndex.from_scenes([scene_header("s", 16, 24)], size=8)  # 6 chips
    _, runs = shares(index, 8, block=64)
    assert [len(r) for r in runs] == [1] * 8
    assert set(p for r in runs for p in r) == set(range(6))
    _, runs = shares(index, 8, block=64, drop_last=True)
    assert runs == [[]] * 8


def test_it_is_a_distributed_sampler_with_the_attributes_torch_reads(big_blocks):
    sampler = BlockShuffleSampler(big_blocks, num_replicas=3, rank=2, seed=7, drop_last=True)
    assert isinstance(sampler, DistributedSampler)
    n = len(big_blocks)
    assert (sampler.num_replicas, sampler.rank, sampler.seed, sampler.epoch) == (3, 2, 7, 0)
    assert (sampler.shuffle, sampler.drop_last) == (True, True)
    assert (sampler.num_samples, sampler.total_size) == (n // 3, 3 * (n // 3))
    sampler.set_epoch(2)
    assert sampler.epoch == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_replicas": 0}, "num_replicas must be an int >= 1"),
        ({"num_replicas": 2, "rank": 2}, r"rank must be an int in \[0, 1\]"),
        ({"rank": -1}, r"rank must be an int in \[0, 0\]"),
        ({"seed": -1}, "seed must be an int >= 0"),
    ],
)
def test_bad_ranks_and_seeds_are_refused(big_blocks, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        BlockShuffleSampler(big_blocks, **kwargs)
