"""How a run's two losses pull on the weights it starts from: the gradient norms of the heatmap
loss (`TrainConfig.loss`) and of the decoded points' loss (`train.loss.decoded_l1`, weight 1),
both as the training step computes them (`Trainer.label_losses`), and the cosine between the
two gradients, on a few augmented training batches. Sets
`decoded_weight`: at the ratio of the norms the second loss pulls as hard as the first.

    python scripts/loss_balance.py train/checkpoints/rt-sep-decoded/config.json

Writes loss_balance.json beside the config (or to --out).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from scripts.machine import describe  # noqa: E402
from train.augment import augment_batch  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.loop import Trainer  # noqa: E402
from train.targets import to_tensor  # noqa: E402


def balance(tr: Trainer, batches: int = 3, seed: int = 1) -> list[dict]:
    """Per batch: each loss's value and gradient norm, and the cosine between the gradients,
    at the trainer's current weights in training mode."""
    tr.net.train()
    params = [p for p in tr.net.parameters() if p.requires_grad]
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(batches):
        idx = rng.choice(tr.train_idx, tr.cfg.batch)
        imgs, pts, _ = augment_batch(rng, tr.cache, idx, tr.aug, tr.mc.input_hw[0])
        w = torch.as_tensor(tr.loss_w[tr.cache.source[idx]], dtype=torch.float32)
        heat, dec = tr.label_losses(tr.net(to_tensor(imgs, tr.mc)), pts, w)
        g_heat = torch.autograd.grad(heat, params, retain_graph=True, allow_unused=True)
        g_dec = torch.autograd.grad(dec, params, allow_unused=True)
        pairs = [(a, b) for a, b in zip(g_heat, g_dec) if a is not None and b is not None]
        n_heat = float(torch.sqrt(sum((a**2).sum() for a, _ in pairs)))
        n_dec = float(torch.sqrt(sum((b**2).sum() for _, b in pairs)))
        cos = float(sum((a * b).sum() for a, b in pairs)) / max(n_heat * n_dec, 1e-12)
        rows.append({"heatmap_loss": float(heat.detach()), "heatmap_grad": n_heat, "decoded_loss": float(dec.detach()),
                     "decoded_grad": n_dec, "cosine": cos, "norm_ratio": n_heat / max(n_dec, 1e-12)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, help="a run's config.json (its init weights are measured)")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="default: loss_balance.json beside the config")
    a = ap.parse_args(argv)
    cfg = TrainConfig.load(a.config, out=str(ROOT / "runs" / "loss_balance"))
    torch.set_num_threads(cfg.threads)
    rows = balance(Trainer(cfg), a.batches)
    for r in rows:
        print(f"{cfg.loss} {r['heatmap_loss']:.3f} (|grad| {r['heatmap_grad']:.3f})  decoded "
              f"{r['decoded_loss']:.3f} px (|grad| {r['decoded_grad']:.3f})  cosine {r['cosine']:.2f}  "
              f"ratio {r['norm_ratio']:.0f}")
    out = a.out or a.config.parent / "loss_balance.json"
    out.write_text(json.dumps({"config": str(a.config), "init": cfg.init, "machine": describe(),
                               "batches": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
