"""Would a shape prior sharpen the model's points? The Gaussian shape model of the human-labelled
training faces (and their mirror images), similarity-aligned as in an active shape model, on
the validation faces:

- fusion: the model's 68 points as a noisy observation of the prior (posterior mean), the
  observation's per-coordinate noise measured on one half of the validation faces and scored
  on the other (two folds), at 0.5, 1 and 2 times the measured noise;
- the jaw from the inner points: the prior's conditional mean of the 17 jaw points given the
  other 51, from the labels themselves (an oracle) and from the model's: how much of where a
  jaw point sits along its line the rest of the face tells (the part of our error that is
  largest: README, Accuracy).

    python scripts/shape_prior_study.py tracker/models/rt-sep-kd.pt

Writes docs/results/shape_prior.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scripts.machine import describe  # noqa: E402
from tracker.core.geometry import apply, invert  # noqa: E402
from tracker.core.landmarks import flip_points  # noqa: E402
from tracker.core.modelfile import load_torch  # noqa: E402
from tracker.core.shape import MEAN_SHAPE_IBUG68, fit_similarity  # noqa: E402
from tracker.evaluation.report import jsonable  # noqa: E402
from tracker.evaluation.scoring import face_errors  # noqa: E402
from train.cache import Cache, path_for  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.relabel import predict  # noqa: E402
from train.sampling import human_split  # noqa: E402

JAW, INNER = np.arange(17), np.arange(17, 68)


def coords(points: np.ndarray) -> np.ndarray:
    """Indices of `points`' x and y in a flattened (68 * 2,) shape."""
    return np.concatenate([2 * points, 2 * points + 1])


class ShapePrior:
    """Mean and covariance of similarity-aligned (K, 2) shapes (generalised Procrustes)."""

    def __init__(self, shapes: np.ndarray, rounds: int = 3):
        mean = MEAN_SHAPE_IBUG68
        for _ in range(rounds):
            aligned = np.stack([apply(fit_similarity(s, mean), s) for s in shapes])
            mean = aligned.mean(0)
        self.mean = mean
        self.cov = np.cov(aligned.reshape(len(aligned), -1).T) + 1e-6 * np.eye(mean.size)

    def align(self, shape: np.ndarray, on: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(the shape in the prior's frame, the (2, 3) transform there), fitted on points `on`."""
        on = np.arange(len(shape)) if on is None else on
        m = fit_similarity(shape[on], self.mean[on])
        return apply(m, shape), m

    def fuse(self, shapes: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Posterior means of `shapes` observed with (D, D) noise covariance `noise`."""
        p_inv, o_inv = np.linalg.inv(self.cov), np.linalg.inv(noise)
        post = np.linalg.inv(p_inv + o_inv)
        out = []
        for s in shapes:
            q, m = self.align(s)
            x = post @ (p_inv @ self.mean.reshape(-1) + o_inv @ q.reshape(-1))
            out.append(apply(invert(m), x.reshape(s.shape)))
        return np.stack(out)

    def jaw_from_inner(self, shapes: np.ndarray) -> np.ndarray:
        """`shapes` with the jaw replaced by its conditional mean given the inner points."""
        j, i = coords(JAW), coords(INNER)
        gain = self.cov[np.ix_(j, i)] @ np.linalg.inv(self.cov[np.ix_(i, i)] + 1e-4 * np.eye(len(i)))
        mu = self.mean.reshape(-1)
        out = []
        for s in shapes:
            q, m = self.align(s, INNER)
            x = q.reshape(-1).copy()
            x[j] = mu[j] + gain @ (x[i] - mu[i])
            out.append(apply(invert(m), x.reshape(s.shape)))
        return np.stack(out)


def score(pred: np.ndarray, truth: np.ndarray) -> dict:
    errs = [face_errors(p, t) for p, t in zip(pred, truth)]
    io = np.array([e["io"] for e in errs])
    return {"nme": float(io.mean()), "median": float(np.median(io)),
            "jaw_along": float(np.mean([e["jaw:along"] for e in errs])),
            "jaw_across": float(np.mean([e["jaw:across"] for e in errs]))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    a = ap.parse_args(argv)
    cache = Cache.load(path_for(load_torch(a.model)[1].model.input_hw[0]))
    train, val = human_split(cache, TrainConfig())
    labels = cache.points[train].astype(np.float64)
    prior = ShapePrior(np.concatenate([labels, flip_points(labels, cache.images.shape[2])]))
    truth = cache.points[val].astype(np.float64)
    pred = predict([a.model], cache, val, flip=False).astype(np.float64)
    rows = [("the model's points", score(pred, truth))]
    folds = np.array_split(np.random.default_rng(0).permutation(len(val)), 2)
    for factor in (0.5, 1.0, 2.0):
        fused = np.empty_like(pred)
        for fit, held in ((folds[0], folds[1]), (folds[1], folds[0])):
            aligned = [prior.align(p) for p in pred[fit]]  # (prediction there, transform)
            resid = np.stack([apply(m, t) - q for (q, m), t in zip(aligned, truth[fit])]).reshape(len(fit), -1)
            fused[held] = prior.fuse(pred[held], np.diag(resid.var(0)) * factor)
        rows.append((f"fused with the prior, noise x{factor:g} (2 folds)", score(fused, truth)))
    rows.append(("jaw from the labelled inner points (oracle)", score(prior.jaw_from_inner(truth), truth)))
    rows.append(("jaw from the model's inner points", score(prior.jaw_from_inner(pred), truth)))
    lines = ["# A shape prior on the validation faces", "",
             f"`python scripts/shape_prior_study.py {a.model}`: {len(val)} held-out human-labelled "
             f"faces; the prior from {len(train)} human-labelled training faces and their mirror "
             "images. NME % over the outer-eye-corner distance; the jaw's error along and across "
             "its line (`tracker.core.metrics.contour_components`).", "",
             "| points | NME % | median % | jaw along % | jaw across % |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {r['nme'] * 100:.2f} | {r['median'] * 100:.2f} | {r['jaw_along'] * 100:.2f} | "
              f"{r['jaw_across'] * 100:.2f} |" for name, r in rows]
    lines += ["", f"Machine: {describe()}.", ""]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "shape_prior.md").write_text("\n".join(lines))
    (a.out / "shape_prior.json").write_text(json.dumps(jsonable(
        {"model": str(a.model), "machine": describe(), "rows": dict(rows)}), indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
