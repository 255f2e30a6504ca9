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

Second part (issue 23), an ImageFolder of 224-pixel JPEGs the script writes itself (smooth noise,
quality 90, four classes) with the usual ImageNet training augmentation (random resized crop +
horizontal flip, ImageNet normalisation), batch 64:

* ``ftui imagefolder``: ``build_data`` + ``build_loader`` as the trainer uses them, at 0 and 2
  workers: images/s with the batches finished on the CPU (as a CPU run trains on them), and images/s
  and bytes per batch of what the workers hand over (what crosses shared memory, the pin-memory
  thread and, on a GPU box, PCIe; there the normalisation runs on the GPU);
* ``bare torchvision``: ``torchvision.datasets.ImageFolder`` (PIL decoding) with
  ``v2.RandomResizedCrop`` + ``v2.RandomHorizontalFlip`` + ``v2.ToImage`` + ``v2.ToDtype(scale=True)`` +
  ``v2.Normalize`` per sample in the workers, the tutorial pipeline, at 0 and 2 workers.

Passes are interleaved over repetitions; figures are medians.

    python benchmarks/input_pipeline.py [--reps 3] [--samples 3000] [--images 512] [--quick]
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


# ---------------------------------------------------------------------------------------------
# An ImageFolder of 224-pixel JPEGs
# ---------------------------------------------------------------------------------------------

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
FOLDER_BATCH = 64


def folder_config(root: Any, workers: int) -> Config:
    from core.config import config_from_dict

    return config_from_dict({
        "data": {"source": "imagefolder", "root": str(root), "image_size": 224, "normalize": "imagenet",
                 "val_fraction": 0.05, "batch_size": FOLDER_BATCH, "num_workers": workers,
                 "persistent_workers": False,
                 "augment": {"hflip": 0.5, "random_resized_crop": {"scale": [0.35, 1.0]}}},
        "run": {"seed": 0},
    })


def ftui_folder_pass(root: Any, workers: int, epoch: int) -> dict[str, float]:
    """Images/s finished on the CPU, images/s and bytes per batch of the workers' own batches."""
    from core.data import build_data, build_loader

    cfg = folder_config(root, workers)
    data = build_data(cfg.data, cfg.run.seed)
    loader = build_loader(data.train, cfg.data, split="train", seed=cfg.run.seed)
    loader.set_epoch(epoch)
    seconds, n = drain(loader)
    loader.close()
    raw = build_loader(data.train, cfg.data, split="train", seed=cfg.run.seed)
    raw.set_epoch(epoch)
    t0 = time.perf_counter()
    count, nbytes = 0, 0
    for x, _ in raw.loader:  # the workers' batches, before the loader finishes them
        count += int(x.shape[0])
        nbytes = x.element_size() * x.nelement()
    raw_seconds = time.perf_counter() - t0
    raw.close()
    return {"finished_img_s": n / seconds, "workers_img_s": count / raw_seconds, "bytes_per_batch": nbytes}


def bare_folder_pass(root: Any, workers: int) -> dict[str, float]:
    from torchvision.datasets import ImageFolder

    tf = v2.Compose([
        v2.RandomResizedCrop(224, scale=(0.35, 1.0), antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET["mean"], IMAGENET["std"]),
    ])
    extra = {"persistent_workers": False, "prefetch_factor": 2} if workers else {}
    loader = DataLoader(ImageFolder(str(root), transform=tf), batch_size=FOLDER_BATCH, shuffle=True, drop_last=True,
                        num_workers=workers, **extra)
    t0 = time.perf_counter()
    n, nbytes = 0, 0
    for x, _ in loader:
        n += int(x.shape[0])
        nbytes = x.element_size() * x.nelement()
    return {"img_s": n / (time.perf_counter() - t0), "bytes_per_batch": nbytes}


def folder_part(images: int, reps: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="ftui-bench-jpeg-") as tmp:
        root = Path(tmp)
        harness.write_jpeg_folder(root, images)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("ftui_w0", "ftui_w2", "bare_w0", "bare_w2")}
        for rep in range(reps):
            runs["ftui_w0"].append(ftui_folder_pass(root, 0, rep))
            runs["bare_w0"].append(bare_folder_pass(root, 0))
            runs["ftui_w2"].append(ftui_folder_pass(root, 2, rep))
            runs["bare_w2"].append(bare_folder_pass(root, 2))
            print(f"imagefolder rep {rep + 1}/{reps}: " + ", ".join(
                f"{k} {v[-1].get('finished_img_s', v[-1].get('img_s')):,.0f} img/s" for k, v in runs.items()), flush=True)

    def med(key: str, field: str) -> float:
        return harness.summary(r[field] for r in runs[key])["median"]

    ftui_bytes, bare_bytes = runs["ftui_w0"][-1]["bytes_per_batch"], runs["bare_w0"][-1]["bytes_per_batch"]
    rows = [
        {"measure": f"ftui imagefolder, {w} workers, finished on the CPU", "value": med(f"ftui_w{w}", "finished_img_s"),
         "unit": "img/s", "note": f"{med(f'ftui_w{w}', 'finished_img_s') / med(f'bare_w{w}', 'img_s'):.2f}x bare"}
        for w in (0, 2)
    ] + [
        {"measure": f"ftui imagefolder, {w} workers, the workers' batches", "value": med(f"ftui_w{w}", "workers_img_s"),
         "unit": "img/s", "note": "normalised on the device after these"} for w in (0, 2)
    ] + [
        {"measure": f"bare torchvision ImageFolder, {w} workers", "value": med(f"bare_w{w}", "img_s"), "unit": "img/s"}
        for w in (0, 2)
    ] + [
        {"measure": "bytes per batch from the workers, ftui", "value": ftui_bytes, "unit": "bytes",
         "note": f"{bare_bytes / ftui_bytes:.1f}x fewer than the bare pipeline's {bare_bytes:,}"},
    ]
    results = {
        "config": {"images": images, "side": 224, "batch_size": FOLDER_BATCH, "reps": reps,
                   "augment": "random resized crop (0.35-1) + hflip 0.5, imagenet normalisation"},
        "runs": runs,
        "medians": {
            "ftui_finished_w0": med("ftui_w0", "finished_img_s"), "ftui_finished_w2": med("ftui_w2", "finished_img_s"),
            "ftui_workers_w0": med("ftui_w0", "workers_img_s"), "ftui_workers_w2": med("ftui_w2", "workers_img_s"),
            "bare_w0": med("bare_w0", "img_s"), "bare_w2": med("bare_w2", "img_s"),
        },
        "bytes_per_batch": {"ftui": ftui_bytes, "bare": bare_bytes},
    }
    return rows, results


def main() -> None:
    p = harness.parser("input_pipeline", __doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--samples", type=int, default=3000, help="Training samples per pass.")
    p.add_argument("--images", type=int, default=512, help="JPEGs in the ImageFolder part (0 leaves it out).")
    args = p.parse_args()
    if args.quick:
        args.reps, args.samples, args.images = 1, 128, 72
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
    if args.images:
        folder_rows, results["imagefolder"] = folder_part(args.images, args.reps)
        rows += folder_rows
    harness.report("input_pipeline", "Input pipeline: shapes + quickstart augmentation; an ImageFolder of JPEGs",
                   rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
