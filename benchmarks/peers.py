"""Peer readers, run in their own environments: ``PYTHON benchmarks/peers.py CASE PLAN.json``.

Needs only the peer's own packages (no geochips): torchgeo (``RasterDataset`` +
``GridGeoSampler`` + ``stack_samples``) or the zen3geo path without torchdata (rioxarray +
xbatcher ``BatchGenerator``, each chip turned into a tensor). Both read the plan's windows
in the plan's order where their grid has them (torchgeo anchors its grid at the bottom-left
corner and keeps partial edge chips, so on a grid whose scenes are not a whole number of
strides it reads its own windows, shuffled with the same seed).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import rasterio
from cases import Plan, result, time_loader


def torchgeo_case(plan: Plan, workers: int) -> dict[str, Any]:
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    ds = RasterDataset(paths=plan["scenes"])
    res = ds.res[0]
    queries = list(GridGeoSampler(ds, size=plan["size"], stride=plan["stride"]))
    by_corner = {(round(q[0].start / res), round(q[1].stop / res)): q for q in queries}
    wanted = []
    for s, r, c, _h, _w in plan["windows"]:
        with rasterio.open(plan["scenes"][s]) as src:
            left, top = src.transform.c, src.transform.f
        wanted.append(by_corner.get((round(left / res) + c, round(top / res) - r)))
    if any(q is None for q in wanted):  # different grid: its own windows, shuffled
        order = np.random.default_rng(0).permutation(len(queries))[: len(plan["windows"])]
        wanted = [queries[i] for i in order]
        same = False
    else:
        same = True
    batch = int(plan.get("batch_size", 16))
    loader = DataLoader(
        ds, sampler=wanted, batch_size=batch, num_workers=workers, collate_fn=stack_samples
    )
    out = time_loader(loader, batch)
    out["same_windows"] = same
    return out


def xbatcher_case(plan: Plan) -> dict[str, Any]:
    import rioxarray
    import torch
    import xbatcher

    size, stride = plan["size"], plan["stride"]
    gens, ncols = [], []
    for path in plan["scenes"]:
        da = rioxarray.open_rasterio(path)  # lazy: each chip reads its window
        gens.append(
            xbatcher.BatchGenerator(
                da,
                input_dims={"y": size, "x": size},
                input_overlap={"y": size - stride, "x": size - stride},
            )
        )
        ncols.append((da.sizes["x"] - size) // stride + 1)
    # xbatcher's grid is geochips' "drop" grid, row-major: the same windows, same order.
    todo = [(s, (r // stride) * ncols[s] + c // stride) for s, r, c, _, _ in plan["windows"]]
    t0 = time.perf_counter()
    t_first = t0
    for k, (s, i) in enumerate(todo):
        torch.from_numpy(np.asarray(gens[s][i].data))
        if k == 0:
            t_first = time.perf_counter()
    t_end = time.perf_counter()
    out = result(len(todo), (t0, t_first, t_end), 1)
    out["same_windows"] = True
    return out


CASES = {
    "torchgeo_w0": lambda plan: torchgeo_case(plan, 0),
    "torchgeo_w2": lambda plan: torchgeo_case(plan, 2),
    "xbatcher": xbatcher_case,
}

if __name__ == "__main__":
    name, plan_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        loaded = json.load(f)
    print(json.dumps(CASES[name](loaded)))
