"""Benchmark 2 — input pipeline: samples/s of the quickstart's data against a bare torchvision pipeline.

* ``ftui shapes``: ``core.data`` as the quickstart trains on it — the procedural ``shapes`` source drawn
  per index, horizontal flips seeded per sample, the fused float/normalise step — through
  ``build_loader`` at 0 and 2 workers.
* ``bare torchvision``: the same images rendered once into one uint8 tensor beforehand, then a plain
  ``DataLoader`` with ``v2.RandomHorizontalFlip`` + ``v2.ToDtype(scale=True)`` + ``v2.Normalize`` per
  sample, at 0 and 2 workers: what a hand-written pipeline on pre-made tensors costs.
* ``generator only``: ``ShapesDataset[i]`` alone (rendering one sample, no transform, no loader).
* ``train step``: samples/s of the quickstart model's forward + backward + AdamW step on pre-made
  batches, the consumer the pipeline has to keep up with; the data share of a 0-worker epoch is
  ``t_data / (t_data + t_step)``.

Passes are interleaved over repetitions; figures are medians.

    python benchmarks/input_pipeline.py [--reps 3] [--samples 3000] [--quick]
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import harness
from core.config import Config, load_config

QUICKSTART = harness.REPO / "sample_configs" / "quickstart.yaml"


class PremadeImages(Dataset):
    """Pre-rendered uint8 images with a per-sample torchvision transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable[[Any], Any]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


def bench_config(samples: int, workers: int) -> Config:
    return load_config(QUICKSTART, [f"data.shapes.train_size={samples}", f"data.num_workers={workers}"])


def drain(loader: Any) -> tuple[float, int]:
    """Seconds to iterate one epoch of ``loader`` (worker start-up included) and samples seen."""
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += int(x.shape[0])
    return time.perf_counter() - t0, n


def ftui_pass(samples: int, workers: int, epoch: int) -> float:
    from core.data import build_data, build_loader

    cfg = bench_config(samples, workers)
    data = build_data(cfg.data, cfg.run.seed)
    loader = build_loader(data.train, cfg.data, split="train", seed=cfg.run.seed)
    loader.set_epoch(epoch)
    seconds, n = drain(loader)
    return n / seconds


def bare_pass(images: torch.Tensor, labels: torch.Tensor, norm: dict, workers: int) -> float:
    tf = v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(norm["mean"], norm["std"]),
    ])
    extra = {"persistent_workers": False, "prefetch_factor": 2} if workers else {}
    loader = DataLoader(PremadeImages(images, labels, tf), batch_size=64, shuffle=True, drop_last=True,
                        num_workers=workers, **extra)
    seconds, n = drain(loader)
    return n / seconds


def generator_pass(samples: int) -> float:
    from core.data.shapes import ShapesDataset

    s = bench_config(samples, 0).data.shapes
    ds = ShapesDataset(s.classes, samples, s.image_size, s.difficulty, 0, "train")
    t0 = time.perf_counter()
    for i in range(samples):
        ds[i]
    return samples / (time.perf_counter() - t0)


def train_step_rate(images: torch.Tensor, labels: torch.Tensor, norm: dict, steps: int) -> float:
    """Samples/s of the quickstart model's training step on ready batches (one CPU thread, as configured)."""
    from core.models import build_model

    cfg = bench_config(len(labels), 0)
    model = build_model(cfg.model, len(cfg.data.shapes.classes), tuple(images.shape[1:])).model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    x_all = (images.float() / 255 - mean) / std
    bs = cfg.data.batch_size
    model.train()
    t0 = time.perf_counter()
    n = 0
    for step in range(steps):
        a = (step * bs) % max(1, len(labels) - bs)
        x, y = x_all[a : a + bs], labels[a : a + bs]
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        n += int(y.shape[0])
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = harness.parser("input_pipeline", __doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--samples", type=int, default=3000, help="Training samples per pass.")
    args = p.parse_args()
    if args.quick:
        args.reps, args.samples = 1, 128
    from core.data import build_data

    cfg = bench_config(args.samples, 0)
    torch.set_num_threads(cfg.trainer.cpu_threads or torch.get_num_threads())
    # The bare pipeline gets the very images (and normalisation) the shapes source draws, pre-rendered.
    data = build_data(cfg.data, cfg.run.seed)
    base = data.train.base
    images = torch.stack([base[i][0] for i in range(args.samples)])
    labels = torch.tensor([base.targets[i] for i in range(args.samples)])
    norm = data.normalization or {"mean": [0.0] * 3, "std": [1.0] * 3}

    rates: dict[str, list[float]] = {k: [] for k in (
        "ftui_shapes_w0", "ftui_shapes_w2", "bare_torchvision_w0", "bare_torchvision_w2", "generator_only", "train_step")}
    for rep in range(args.reps):
        rates["ftui_shapes_w0"].append(ftui_pass(args.samples, 0, rep))
        rates["bare_torchvision_w0"].append(bare_pass(images, labels, norm, 0))
        rates["ftui_shapes_w2"].append(ftui_pass(args.samples, 2, rep))
        rates["bare_torchvision_w2"].append(bare_pass(images, labels, norm, 2))
        rates["generator_only"].append(generator_pass(args.samples))
        rates["train_step"].append(train_step_rate(images, labels, norm, 4 if args.quick else 60))
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()), flush=True)
    med = {k: harness.summary(v)["median"] for k, v in rates.items()}
    data_share = (1 / med["ftui_shapes_w0"]) / (1 / med["ftui_shapes_w0"] + 1 / med["train_step"])
    headroom = med["ftui_shapes_w0"] / med["train_step"]
    rows = [
        {"measure": "ftui shapes + hflip, 0 workers", "value": med["ftui_shapes_w0"], "unit": "samples/s",
         "note": f"{med['ftui_shapes_w0'] / med['bare_torchvision_w0']:.2f}x the bare pipeline"},
        {"measure": "ftui shapes + hflip, 2 workers", "value": med["ftui_shapes_w2"], "unit": "samples/s",
         "note": f"{med['ftui_shapes_w2'] / med['bare_torchvision_w2']:.2f}x the bare pipeline (worker start-up included)"},
        {"measure": "bare torchvision on pre-made tensors, 0 workers", "value": med["bare_torchvision_w0"],
         "unit": "samples/s"},
        {"measure": "bare torchvision on pre-made tensors, 2 workers", "value": med["bare_torchvision_w2"],
         "unit": "samples/s"},
        {"measure": "shapes generator alone", "value": med["generator_only"], "unit": "samples/s"},
        {"measure": "quickstart train step (consumer)", "value": med["train_step"], "unit": "samples/s",
         "note": "forward + backward + AdamW, 1 thread"},
        {"measure": "data share of a 0-worker quickstart epoch", "value": data_share, "unit": "fraction",
         "target": "< 0.5 (not the bottleneck)", "status": harness.verdict(data_share, 0.5),
         "note": f"pipeline is {headroom:.1f}x faster than the step"},
    ]
    results = {
        "config": {"reps": args.reps, "samples": args.samples, "image_size": cfg.data.shapes.image_size,
                   "batch_size": cfg.data.batch_size, "augment": "hflip 0.5", "threads": torch.get_num_threads()},
        "rates": rates, "medians": med, "data_share_0_workers": data_share, "pipeline_over_step": headroom,
    }
    harness.report("input_pipeline", "Input pipeline: shapes + quickstart augmentation", rows, results, args.out,
                   quick=args.quick)


if __name__ == "__main__":
    main()
