"""The tracker as deployed (its own detector on the whole image) on the held-out validation
faces of the human-labelled training sources: where pipeline settings are chosen, never on
the test set. Training validates on canonical crops cut from the ground-truth box; this runs
the same 173 faces through detection, crop and alignment, one image at a time, so that it
measures what the detector's crop costs and what the tracker does about it (`refine`), and
what the model's per-point offsets (`tracker.core.calibration`) do on whole images.

    python scripts/eval_validation.py ../shared/data                     # refine 0, 1, 2
    python scripts/eval_validation.py ../shared/data --model rt-l --refine 1 --offsets on off

Writes docs/results/validation_detector.{md,json} (a run adds or replaces its model's rows).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import describe  # noqa: E402
from tracker.core.datasets import image_folder  # noqa: E402
from tracker.evaluation.images import evaluate_images  # noqa: E402
from tracker.evaluation.report import jsonable  # noqa: E402
from tracker.runtime.config import TrackerConfig  # noqa: E402
from tracker.runtime.tracker import Tracker  # noqa: E402
from train.cache import SOURCES  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.sampling import held_out  # noqa: E402


def validation_records(data: Path, fraction: float = TrainConfig.val_fraction) -> list:
    """The face records of the human sources whose identity group training holds out."""
    out = []
    for name, kind, rel, human in SOURCES:
        if human and kind == "images":
            out += [r for r in image_folder(data / rel) if held_out(f"{name}/{r.group}", fraction)]
    return out


class WithoutOffsets:
    """A backend whose model info has its per-point offsets dropped (the model as it decodes)."""

    def __init__(self, backend):
        self.backend, self.info = backend, dataclasses.replace(backend.info, offsets=())

    def __call__(self, x):
        return self.backend(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (holding 300w/)")
    ap.add_argument("--model", default=None, help="a model name or file (default: the bundled default model)")
    ap.add_argument("--refine", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--offsets", nargs="+", default=["on"], choices=["on", "off"],
                    help="with the model's per-point offsets (on), without them (off), or both")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    a = ap.parse_args(argv)
    from tracker.engines.backend import BackendOptions
    from tracker.engines.registry import load_backend, resolve_model

    model = resolve_model(a.model, ".onnx")
    records = validation_records(a.data)
    print(f"{len(records)} validation faces", file=sys.stderr)
    json_path = a.out / "validation_detector.json"
    old = json.loads(json_path.read_text()) if json_path.is_file() else {}
    rows = {(r["model"], r["refine"], r["offsets"]): r for r in old.get("rows", [])}
    for refine in a.refine:
        for offsets in a.offsets:
            cfg = TrackerConfig(model=str(model), refine=refine, threads=a.threads)
            backend = load_backend(cfg.backend, cfg.model, options=BackendOptions(threads=a.threads))
            if offsets == "off":
                backend = WithoutOffsets(backend)
            t0 = time.perf_counter()
            with Tracker(cfg, backend=backend) as tracker:
                res = evaluate_images(records, tracker, "detector", name=f"refine={refine}")
            s = res["summary"]
            rows[(Path(model).name, refine, offsets)] = {
                "model": Path(model).name, "refine": refine, "offsets": offsets, **s,
                "wall_s": time.perf_counter() - t0}
            print(f"{Path(model).name} refine={refine} offsets {offsets}: NME {s['io']['mean'] * 100:.2f} %, "
                  f"median {s['io']['median'] * 100:.2f} %, AUC@0.08 {s['io']['auc@0.08']:.3f}, "
                  f"missed {s['missed']}", file=sys.stderr)
    ordered = [rows[k] for k in sorted(rows)]
    a.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(jsonable({"faces": len(records), "machine": describe(),
                                              "rows": ordered}), indent=1))
    lines = [f"# The tracker on the {len(records)} validation faces (own detector)", "",
             "`python scripts/eval_validation.py DATA`: the human-labelled faces training holds "
             "out (`train.sampling.held_out`), each image run through the tracker (BlazeFace, "
             "crop, alignment) as a still; inter-ocular NME on 68 points, a face not found "
             "counts as 1.0. `refine`: passes that re-crop a detected face from its own "
             "landmarks (`TrackerConfig.refine`); `offsets`: with the model's per-point offsets "
             "(`tracker.core.calibration`) or without them.", "",
             "| model | refine | offsets | missed | NME mean % | median % | AUC@0.08 | FR@0.08 % | ms/face |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in ordered:
        io = r["io"]
        lines.append(f"| {r['model']} | {r['refine']} | {r['offsets']} | {r['missed']} | {io['mean'] * 100:.2f} "
                     f"| {io['median'] * 100:.2f} | {io['auc@0.08']:.3f} | {io['fr@0.08'] * 100:.1f} "
                     f"| {r['ms_per_face']:.1f} |")
    lines += ["", f"Machine: {describe()} (ms/face includes detection; read it as relative).", ""]
    (a.out / "validation_detector.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
