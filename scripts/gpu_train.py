"""Train the paper model (fan2-256) on the GPU machine in one ten-minute command, distil the
tracker's default model from it, and bring the weights back in pieces that fit its 16 MB a file.

Three steps (`train.pack`, `train.sprint`, `train.checkpoint`):

1. Here, once: pack a compact training set into the tree, at the git-ignored `.gpu_pack/`:
   every human-labelled 300-W training face (2,008), then teacher-labelled faces while they
   fit, as JPEG crops of 320 px around the paper model's 256-px canonical crop (margin 1.25).
   Its budget defaults to what the 64 MiB that travels leaves beside the working tree, less
   5 MiB (at most 40 MiB); it prints the pack's size and what will travel:

       .venv/bin/python scripts/gpu_train.py pack              # from ../shared/data
       .venv/bin/python scripts/gpu_train.py pack --from-cache .cache/train_crops_384.npz

2. On the GPU machine, the exact call (it reads nothing outside the repository and installs
   nothing: torch, numpy, OpenCV and tqdm are there):

       run(command="set -o pipefail; PYTHONUNBUFFERED=1 python3 scripts/gpu_train.py train "
                   "--pack .gpu_pack --out $OUT --minutes 5.5 --distil-minutes 2.5 "
                   "2>&1 | tee $OUT/log.txt",
           carry=[".gpu_pack"], timeout_s=600)

   Time plan (600 s): ~15 s start-up (imports, CUDA, the pack decoded into GPU memory);
   330 s teacher (Siamese loss, bf16, channels-last, 128 faces x 2 branches a step, Adam
   1e-3 with warm-up and a cosine over the 330 s, validation every minute); ~5 s to write and
   score its fp16 pieces; 150 s distilling the default model from it (warm start from its bundled
   .pt, 256 faces a step); done at ~8.4 min. `--deadline-minutes 9` (the default) shortens the
   phases if start-up runs long, so the command ends inside its limit; `--l2` trains with the
   plain L2 loss instead (about twice the faces a second). The teacher's pieces are written
   before distillation starts, so a run cut short still returns them. $OUT gets 6 files:
   teacher.part0.pt, teacher.part1.pt (fp16 weights, < 15 MiB each), student.pt (fp32),
   metrics.json (both models' validation every minute, speeds, the fp16 teacher's score),
   config.json, log.txt.

3. Here, from the files that came back (`files_at`):

       .venv/bin/python scripts/gpu_train.py reassemble <files_at> -o runs/gpu/fan2-256/best.pt
       .venv/bin/python scripts/ship_model.py runs/gpu/fan2-256/best.pt --name fan2-256
       .venv/bin/python scripts/calibrate_offsets.py tracker/models/fan2-256.pt --write

   student.pt loads as it is (`scripts/ship_model.py <files_at>/student.pt --name NAME`, the
   default's name, then its offsets the same way).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

T0 = time.time()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA_ROOT = ROOT.parent / "shared" / "data"
TRAVEL_LIMIT = 64 * 2**20  # what the GPU machine takes of the working tree
MiB = 2**20
RESERVE = 5 * MiB  # kept free beside tree and pack (untracked files made before the call)
#: What the 2,008 human 300-W training faces take in a pack (320 px, quality 75: 28.14 MiB
#: measured): the tree must leave at least this much, or the pack drops human faces.
HUMAN_PACK = 28.2 * MiB
# an unfinished run's checkpoint, committed until the run ends (README, "Runs longer than one
# sitting"): it travels too, and takes the pack's room meanwhile
UNFINISHED_RUNS = "train/checkpoints/*/last.pt"


def travelling_bytes(root: Path, leave_out: Path | None = None) -> int | None:
    """Bytes of the working tree that travel to the GPU machine (tracked and untracked files
    that git does not ignore), less anything under `leave_out`; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    total = 0
    skip = leave_out.resolve() if leave_out is not None else None
    for name in out.decode().split("\0"):
        p = root / name
        if name and p.is_file() and not (skip is not None and skip in p.resolve().parents):
            total += p.stat().st_size
    return total


def cmd_pack(a: argparse.Namespace) -> int:
    from train.pack import build_from_cache, build_from_data

    tree = travelling_bytes(ROOT, a.out)
    if a.max_mb is not None:
        budget = int(a.max_mb * MiB)
    elif tree is None:
        budget = 25 * MiB
    else:
        budget = int(min(40 * MiB, TRAVEL_LIMIT - RESERVE - tree))
        if budget < HUMAN_PACK:
            unfinished = sorted(str(q.relative_to(ROOT)) for q in ROOT.glob(UNFINISHED_RUNS))
            print(f"warning: the working tree takes {tree / MiB:.1f} MiB, which leaves the pack "
                  f"{budget / MiB:.1f} MiB: too little for every human face "
                  f"({HUMAN_PACK / MiB:.1f} MiB)" +
                  (f"; move {', '.join(unfinished)} (unfinished runs) out of the tree until the "
                   "GPU run is back" if unfinished else ""), file=sys.stderr)
        if budget < MiB:
            print(f"error: the working tree takes {tree / MiB:.1f} MiB; too little of the 64 MiB "
                  f"is left for a pack", file=sys.stderr)
            return 2
    kw = dict(side=a.side, margin=a.margin, quality=a.quality, teacher_quality=a.teacher_quality,
              seed=a.seed)
    if a.from_cache is not None:
        from train.cache import Cache
        from train.config import TrainConfig

        pack = build_from_cache(Cache.load(a.from_cache), a.out, budget, TrainConfig().human_sources,
                                origin=f"cache:{a.from_cache}", **kw)
    else:
        pack = build_from_data(a.data_root, a.out, budget, per_clip=a.per_clip, limit=a.limit, **kw)
    size = pack.meta["bytes"]
    summary = {"pack": str(a.out), "faces": len(pack), "human_faces": pack.meta["human_faces"],
               "teacher_faces": pack.meta["teacher_faces"],
               "per_source": {n: int((pack.source == i).sum()) for i, n in enumerate(pack.names)},
               "side": pack.side, "margin": pack.margin, "quality": [a.quality, a.teacher_quality],
               "pack_mib": round(size / MiB, 2), "budget_mib": round(budget / MiB, 2)}
    if tree is not None:
        summary["tree_mib"] = round(tree / MiB, 2)
        summary["travels_mib"] = round((tree + size) / MiB, 2)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from train.sprint import Sprint, SprintConfig

    cfg = SprintConfig(minutes=a.minutes, distil_minutes=a.distil_minutes,
                       deadline_minutes=a.deadline_minutes, student=a.student, siamese=not a.l2,
                       batch=a.batch, student_batch=a.student_batch, lr=a.lr, student_lr=a.student_lr,
                       teacher_model=json.loads(a.teacher_model) if a.teacher_model else None,
                       student_model=json.loads(a.student_model) if a.student_model else None,
                       student_init=None if a.student_init in ("", "none") else a.student_init,
                       eval_every=a.eval_every, piece_mb=a.piece_mb, amp=a.amp, seed=a.seed,
                       val_fraction=a.val_fraction)
    print(json.dumps({"config": asdict(cfg), "start_s": round(time.time() - T0, 1)}), flush=True)
    metrics = Sprint(cfg, a.pack, a.out, t0=T0).run()
    last = {p: metrics[p][-1]["val_nme"] for p in ("teacher", "student") if metrics[p]}
    print(json.dumps({"val_nme": last, "teacher_fp16": metrics.get("teacher_fp16", {}).get("val_nme"),
                      "elapsed_s": round(time.time() - T0, 1)}), flush=True)
    return 0


def cmd_reassemble(a: argparse.Namespace) -> int:
    from tracker.core.modelfile import load_torch
    from train.checkpoint import join_pieces, save

    paths = sorted(Path(a.folder).glob(f"{a.stem}.part*.pt"))
    if not paths:
        print(f"error: no {a.stem}.part*.pt in {a.folder}", file=sys.stderr)
        return 2
    ck = join_pieces(paths)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    save(ck, a.output)
    net, info = load_torch(a.output)  # what ship_model.py reads: check it loads
    n = sum(p.numel() for p in net.parameters())
    print(json.dumps({"checkpoint": str(a.output), "pieces": [p.name for p in paths], "parameters": n,
                      "model": info.model.to_dict(), "val_nme": ck.get("best")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    from tracker.core.model_config import PRESETS
    from tracker.core.modelfile import DEFAULT_MODEL, DEFAULT_PRESET

    ap = argparse.ArgumentParser(prog="scripts/gpu_train.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("pack", help="pack a compact training set into the tree")
    p.add_argument("data_root", type=Path, nargs="?", default=DATA_ROOT)
    p.add_argument("--from-cache", type=Path, default=None, help="a crop cache (.npz) to pack instead")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu_pack")
    p.add_argument("--side", type=int, default=320)
    p.add_argument("--margin", type=float, default=1.25, help="crop side / canonical crop side")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality of the human faces")
    p.add_argument("--teacher-quality", type=int, default=70)
    p.add_argument("--max-mb", type=float, default=None,
                   help="the pack's size in MiB (default: what the 64 MiB that travels leaves, <= 40)")
    p.add_argument("--per-clip", type=int, default=8, help="frames a clip offers at most")
    p.add_argument("--limit", type=int, default=None, help="faces per source at most (tests)")
    p.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train the teacher, distil the student (on the GPU machine)")
    t.add_argument("--pack", type=Path, default=ROOT / ".gpu_pack")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=5.5)
    t.add_argument("--distil-minutes", type=float, default=2.5)
    t.add_argument("--deadline-minutes", type=float, default=9.0,
                   help="the whole run, start-up included, ends inside this")
    t.add_argument("--student", default=DEFAULT_PRESET, choices=[n for n in PRESETS if n != "fan2-256"])
    t.add_argument("--student-init", default=f"tracker/models/{DEFAULT_MODEL}.pt",
                   help="warm start of the student ('none' for none)")
    t.add_argument("--l2", action="store_true", help="plain L2 instead of the Siamese loss")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--student-batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--student-lr", type=float, default=5e-4)
    t.add_argument("--teacher-model", default=None, help="JSON: ModelConfig fields to override (tests)")
    t.add_argument("--student-model", default=None, help="JSON: ModelConfig fields to override (tests)")
    t.add_argument("--eval-every", type=float, default=60.0, help="seconds")
    t.add_argument("--piece-mb", type=float, default=15.0)
    t.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    t.add_argument("--val-fraction", type=float, default=0.08,
                   help="of the human identity groups, held out (train.sampling.split)")
    t.add_argument("--seed", type=int, default=0)

    r = sub.add_parser("reassemble", help="join the teacher's pieces into a checkpoint")
    r.add_argument("folder", type=Path)
    r.add_argument("-o", "--output", type=Path, required=True)
    r.add_argument("--stem", default="teacher")

    a = ap.parse_args(argv)
    if a.cmd == "train":  # on the GPU machine: a failure keeps its traceback
        return cmd_train(a)
    try:
        return {"pack": cmd_pack, "reassemble": cmd_reassemble}[a.cmd](a)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
