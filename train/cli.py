"""Command line for training: `python -m train RECIPE [--set key=value ...]`.

    python -m train.cache ../shared/data            # once: cut the crop cache (192 px)
    python -m train.cache ../shared/data --side 384 # the paper model's (256-px input) cache
    python -m train rt                              # the real-time model's recipe
    python -m train paper --set out=runs/paper      # the paper's recipe (on the 384-px cache)
    python -m train --config runs/rt-m/config.json  # reproduce (or resume) a run
    torchrun --standalone --nproc_per_node=4 -m train --config runs/rt-m/config.json
                                                    # the same, data-parallel on 4 GPUs or processes

Under torchrun the global batch stays `batch` faces, split over the ranks (see
`train.distributed`); rank 0 writes the run folder and decides when --max-minutes is up.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from train.config import RECIPES, TrainConfig


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--set expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", nargs="?", choices=sorted(RECIPES))
    ap.add_argument("--config", type=Path, help="a config.json to reproduce or resume")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override config fields (values parsed as JSON when they can be)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (with a checkpoint) after this long; run again to resume")
    a = ap.parse_args(argv)
    if (a.recipe is None) == (a.config is None):
        ap.error("give a recipe or --config")
    overrides = parse_overrides(a.set)
    try:
        cfg = (TrainConfig.load(a.config, **overrides) if a.config
               else replace(RECIPES[a.recipe], **overrides))
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from tracker.core.model_config import PRESETS
    from train.cache import CacheMismatch, build_command, check_fits, read_side, side_for

    input_side = PRESETS[cfg.preset].input_hw[0]
    if not Path(cfg.cache).exists():
        print(f"error: crop cache {cfg.cache} not found; build it with "
              f"{build_command(cfg.cache, side_for(input_side))}", file=sys.stderr)
        return 2
    side = read_side(Path(cfg.cache))  # checked again, from the images, once loaded
    try:
        if side is not None:
            check_fits(side, input_side, cfg.cache)
    except CacheMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from train.distributed import from_env, shutdown
    from train.loop import Trainer

    dist = from_env()
    try:
        if dist.is_main:
            print(json.dumps(asdict(cfg)))
        Trainer(cfg, dist=dist).fit(None if a.max_minutes is None else a.max_minutes * 60)
    except CacheMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept, run again to resume", file=sys.stderr)
        return 130
    finally:
        shutdown(dist)
    return 0


if __name__ == "__main__":
    sys.exit(main())
