"""Build the assignment's data layout (../shared/DATA.md): the command line over ``reid.build``.

Two sources share one protocol (``reid/build.py``):

* ``pool``: a folder of Market-1501-named crops (``0002_c1s1_000451_03.jpg``);
  the JPEG bytes are copied as they are.
* ``synthetic``: the built-in default. Procedurally drawn pedestrians (``reid/synthetic.py``,
  64 x 128) seen by 6 cameras; each identity has its own build and clothing, each camera
  its own scene, lighting and colour cast.

The tree is written into a temporary folder next to OUT and renamed into place, so an
interrupted build leaves nothing half-made; the root gets ``BUILD_INFO.json`` (source,
seed and counts).

CLI::

    python make_data.py pool SRC OUT [--seed N] [--train-ids 230 --val-ids 49
                                      --test-ids 100 --per-id 10] [--force]
    python make_data.py synthetic OUT [--seed N] [same counts] [--force]
    python make_data.py synthetic-pool OUT [--seed N] [--ids 400 --per-id 12]

``synthetic-pool`` writes drawn pedestrians under Market-1501 names (a labelled pool, not a layout):
what ``bench.standin_weights --other-pool`` trains a prior from that has never seen a Market camera.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reid.build import OutputExistsError, build_from_pool, build_synthetic, summarize, write_synthetic_pool


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints a summary paragraph at the end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    pool_p = sub.add_parser("pool", help="build from a folder of Market-1501-named crops")
    pool_p.add_argument("src", type=Path)
    syn_p = sub.add_parser("synthetic", help="build from drawn pedestrians")
    for p in (pool_p, syn_p):
        p.add_argument("out", type=Path)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--train-ids", type=int, default=230)
        p.add_argument("--val-ids", type=int, default=49)
        p.add_argument("--test-ids", type=int, default=100)
        p.add_argument("--per-id", type=int, default=10)
        p.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    spool = sub.add_parser("synthetic-pool", help="write drawn pedestrians under Market-1501 names (a pool)")
    spool.add_argument("out", type=Path)
    spool.add_argument("--seed", type=int, default=0)
    spool.add_argument("--ids", type=int, default=400)
    spool.add_argument("--per-id", type=int, default=12)
    args = parser.parse_args(argv)
    if args.mode == "synthetic-pool":
        if args.out.exists() and any(args.out.iterdir()):
            print(f"make_data.py: error: {args.out} is not empty", file=sys.stderr)
            return 2
        start = time.perf_counter()
        write_synthetic_pool(args.out, identities=args.ids, per_id=args.per_id, seed=args.seed)
        print(f"Wrote {args.ids} × {args.per_id} drawn pedestrians under Market-1501 names to {args.out} "
              f"(seed {args.seed}) in {time.perf_counter() - start:.1f} s")
        return 0
    kw = dict(seed=args.seed, train_ids=args.train_ids, val_ids=args.val_ids,
              test_ids=args.test_ids, per_id=args.per_id, force=args.force)
    start = time.perf_counter()
    try:
        if args.mode == "pool":
            root = build_from_pool(args.src, args.out, **kw)
            source = f"the pool {args.src}"
        else:
            root = build_synthetic(args.out, **kw)
            source = "synthetic pedestrians"
    except (ValueError, OutputExistsError, FileNotFoundError) as err:   # ValueError: counts
        print(f"make_data.py: error: {err}", file=sys.stderr)
        return 2
    print(f"Built the layout from {source} (seed {args.seed}) in "
          f"{time.perf_counter() - start:.1f} s at {root}: {summarize(root)}; "
          f"{args.train_ids}/{args.val_ids}/{args.test_ids} identities, "
          f"{args.per_id} images picked per identity.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
