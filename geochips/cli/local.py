"""``geochips localize``: a saved index to local copies of its scenes and the index over them."""

from __future__ import annotations

import argparse

from geochips.cli.build import check_out
from geochips.index import ChipIndex
from geochips.select.localize import localize, plan_localize


def localize_command(args: argparse.Namespace) -> int:
    """Copy what the chips of a saved index read into ``--to``; save the new index."""
    check_out(args.out)
    index = ChipIndex.load(
        args.index,
        sign=None if args.sign == "none" else args.sign,
        gdal_options=dict(args.gdal_option),
    )
    print(plan_localize(index, args.to, args.codec), flush=True)
    local = localize(index, args.to, args.codec, workers=args.workers)
    local.save(args.out)
    print(f"saved {len(local)} chips over {len(local.scenes)} local scene(s) to {args.out}")
    return 0
