"""The rule that picks one thread or all cores for a batch: its logic, then on real reads."""

import os
import time

import numpy as np
import pytest
import torch

from geochips import ChipDataset, ChipIndex
from geochips.loading.threadrule import EXPLORE, ThreadRule


def run(rule: ThreadRule, cost: dict[int, float], batches: int) -> list[int]:
    """The rule's picks over ``batches`` batches of 16 chips costing ``cost[threads]`` each."""
    picks = []
    for _ in range(batches):
        threads = rule.pick()
        picks.append(threads)
        rule.record(threads, cost[threads] * 16, 16)
    return picks


@pytest.mark.parametrize(("one", "many", "best"), [(1e-4, 3e-4, 1), (2e-3, 1e-3, 4)])
def test_the_rule_measures_both_then_keeps_to_the_cheaper_and_looks_again(one, many, best):
    rule = ThreadRule(4)
    picks = run(rule, {1: one, 4: many}, 4 + 3 * EXPLORE)
    # Two batches each (the first of each opens files and is not counted), then the
    # cheaper choice but for two batches in EXPLORE, which time the other again.
    assert picks[:4] == [1, 1, 4, 4]
    later = picks[4:]
    assert later.count(best) == len(later) - 2 * 3
    assert rule.cost[1] == pytest.approx(one) and rule.cost[4] == pytest.approx(many)


def test_the_rule_follows_a_change_in_what_reads_cost():
    rule = ThreadRule(2)
    run(rule, {1: 2e-3, 2: 1e-3}, 4 + EXPLORE)  # decoding: threads pay
    assert rule.pick() == 2
    # The tiles are now in the block cache: one thread is cheaper. The next look at one
    # thread (within EXPLORE batches) sees it, and the rule switches.
    picks = run(rule, {1: 1e-4, 2: 3e-4}, 2 * EXPLORE)
    assert picks[EXPLORE:].count(1) == EXPLORE - 2  # all but the next look at 2 threads


def test_one_core_means_one_thread():
    rule = ThreadRule(1)
    assert run(rule, {1: 1e-3}, 5) == [1] * 5


def rate(dataset: ChipDataset, threads: int, batches: list[list[int]], repeat: int = 3) -> float:
    """Chips a second of ``dataset`` reading ``batches`` with ``threads`` (best of runs)."""
    dataset.threads = threads
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for batch in batches:
            dataset.__getitems__(batch)
        best = max(best, sum(map(len, batches)) / (time.perf_counter() - started))
    dataset.threads = None
    return best


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to choose")
@pytest.mark.parametrize("reads", ["decoding", "cached"])
def test_the_rule_picks_what_measures_faster(make_scene, reads):
    # Decoding: DEFLATE tiles and a 1 MB block cache, so every chip decodes its tile.
    # Cached: uncompressed tiles that stay in the block cache, so reads are copies.
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-3, 4, (1, 2048, 2048)), axis=2)  # compresses ~3x
    data = (smooth - smooth.min()).astype(np.uint16)
    decoding = reads == "decoding"
    path = make_scene(data=data, blocksize=512, compress="deflate" if decoding else "none")
    options = {"GDAL_CACHEMAX": 1} if decoding else {}
    index = ChipIndex.build([path], size=512, stride=512 if decoding else 256)
    dataset = ChipDataset(index, gdal_options=options)
    order = rng.permutation(len(index)).tolist()
    batches = [order[s : s + 8] for s in range(0, len(order) - 7, 8)]
    for _ in range(3 * EXPLORE // len(batches) + 1):  # the rule times both, looks again
        for batch in batches:
            samples = dataset.__getitems__(batch)
    for key, sample in zip(batch, samples, strict=True):
        assert torch.equal(sample["image"], dataset[key]["image"])
    rule = dataset._batches.rule
    assert rule is not None and None not in rule.cost.values()
    many = rule.many
    measured = {1: rate(dataset, 1, batches), many: rate(dataset, many, batches)}
    faster, slower = sorted(measured, key=measured.get, reverse=True)
    favoured = min(rule.cost, key=rule.cost.get)
    # Where one choice is clearly faster (by 25 %), the rule must favour it.
    if measured[faster] > 1.25 * measured[slower]:
        assert favoured == faster, (measured, rule)


def test_a_change_in_the_favoured_cost_times_the_other_again_at_once():
    rule = ThreadRule(2)
    run(rule, {1: 2e-3, 2: 1e-3}, 6)  # decoding: two threads in favour
    # The tiles are now cached: two threads cost a third as much. Once the running cost
    # has moved by more than CHANGE (after one batch here), one thread is timed again at
    # once, not EXPLORE batches on, and kept.
    picks = run(rule, {1: 1e-4, 2: 3e-4}, 6)
    assert picks == [2, 1, 1, 1, 1, 1]


def test_one_thread_getting_cheaper_as_the_cache_fills_is_no_reason_to_look_again():
    # A first pass over cached tiles: one thread is in favour and costs less batch after
    # batch. Only the periodic look times two threads again, not every 1.5x drop.
    rule = ThreadRule(2)
    picks = []
    for k in range(24):
        threads = rule.pick()
        picks.append(threads)
        one = 3e-3 * 0.85**k  # falls ~15 % a batch: 1.5x every three batches
        rule.record(threads, (one if threads == 1 else 2 * one) * 16, 16)
    assert picks[:4] == [1, 1, 2, 2]
    assert picks[4:].count(2) == 2  # the look EXPLORE batches on, no other


def test_one_thread_getting_dearer_times_threads_again_at_once():
    rule = ThreadRule(2)
    run(rule, {1: 1e-4, 2: 3e-4}, 6)  # cached: one thread in favour
    picks = run(rule, {1: 2e-3, 2: 1e-3}, 6)  # now decoding: threads pay
    assert picks[:3] == [1, 2, 2] and picks[3:] == [2, 2, 2]
