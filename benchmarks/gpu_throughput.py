"""Benchmark 6 — GPU throughput: images/s through ftui's Trainer and through a hand-written loop.

Runs only where CUDA exists; elsewhere it writes a JSON that says so and exits 0 (``--cpu-dry-run``
runs the same code on the CPU at toy sizes, to keep the script working). For each model
(``--models``, default resnet18 and resnet50, built by ``core.models.build_model``) at 224x224 with
``bf16-mixed`` + ``channels_last``:

* **compute** — the same pre-made device batch every step: ftui's ``Trainer`` with every default
  callback (recorder, checkpoints, telemetry, layer statistics, control, TensorBoard), its loaders
  replaced after setup; against a hand-written loop (autocast bf16, channels_last, fused AdamW,
  ``zero_grad(set_to_none=True)``). With ``--compile`` both also run under ``torch.compile``, with
  ``torch._dynamo.reset()`` before each compiled run so neither reuses the other's graphs.
* **loader** — an ImageFolder of 224-pixel JPEGs the script writes (random resized crop + flip,
  ImageNet normalisation): ftui's Trainer through its own loaders (uint8 from the workers,
  normalised on the GPU after a side-stream copy); against the hand-written loop fed by a bare
  torchvision pipeline (PIL decoding, float32 normalised in the workers, pinned memory,
  ``non_blocking`` copies).

Every figure is a window of ``--steps`` training batches after ``--warmup`` batches inside one epoch,
timed between two device synchronisations: no checkpoint, validation or epoch end falls inside it.
The ratio is ftui / hand-written; GPU utilisation is the median ``util`` of the run's ``system.jsonl``
(ftui's own telemetry), and peak memory is ``torch.cuda.max_memory_allocated``.

    python benchmarks/gpu_throughput.py [--models resnet18,resnet50] [--compile | --compile-models resnet18]
                                        [--steps 30] [--quick]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import harness

BATCH = {"resnet18": 256, "resnet50": 128}  # per model at 224x224, bf16
CLASSES = 8


class DeviceBatches:
    """The interface of ``core.data.EpochLoader`` over the same pre-made device batch, ``steps`` times."""

    def __init__(self, x: Any, y: Any, steps: int) -> None:
        self.x, self.y, self.steps = x, y, steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def set_start_batch(self, index: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter([(self.x, self.y)] * self.steps)


def sync(device: Any) -> None:
    """Wait for the device's queued work (timing needs it on CUDA)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Window:
    """Times batches ``warmup`` .. ``warmup + steps - 1`` of the first epoch between two synchronisations."""

    def __init__(self, device: Any, warmup: int, steps: int, batch: int) -> None:
        self.device, self.warmup, self.steps, self.batch = device, warmup, steps, batch
        self.t0 = self.seconds = 0.0

    def at_start(self, index: int) -> None:
        if index == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()

    def at_end(self, index: int) -> None:
        if index == self.warmup + self.steps - 1:
            sync(self.device)
            self.seconds = time.perf_counter() - self.t0

    @property
    def rate(self) -> float:
        return self.steps * self.batch / self.seconds if self.seconds else float("nan")


def reset_compiled() -> None:
    import torch

    torch._dynamo.reset()  # no graph of the previous run is reused (nor counts against its limits)


def peak_memory_gib(device: Any) -> float | None:
    import torch

    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def ftui_config(root: Path, name: str, model: str, batch: int, steps: int, compile_: bool, device: str,
                folder: Path | None = None, workers: int | str = "auto", side: int = 224) -> Any:
    from core.config import config_from_dict

    if folder is None:
        from core.config import SHAPE_CLASSES

        # a stand-in the loaders are replaced for: only its class count and image shape matter
        data = {"source": "shapes", "shapes": {"image_size": 32, "train_size": batch * 2, "val_size": batch,
                                               "test_size": 0, "classes": list(SHAPE_CLASSES[:CLASSES])},
                "batch_size": batch, "normalize": "none", "num_workers": 0}
    else:
        data = {"source": "imagefolder", "root": str(folder), "image_size": side, "normalize": "imagenet",
                "val_fraction": 0.02, "batch_size": batch, "num_workers": workers,
                "augment": {"hflip": 0.5, "random_resized_crop": {"scale": [0.35, 1.0]}}}
    return config_from_dict({
        "run": {"name": name, "root": str(root)},
        "data": data,
        "model": {"name": model},
        "optim": {"name": "adamw", "lr": 1e-3},
        "schedule": {"name": "none"},
        "trainer": {"epochs": 1, "max_steps": steps, "precision": "bf16-mixed", "channels_last": True,
                    "compile": compile_, "device": device},
        "logging": {"progress": "none", "tensorboard_graph": False},
    })


def gpu_util(trainer: Any) -> float | None:
    utils = []
    system = Path(trainer.run.path) / "system.jsonl" if trainer.run is not None else None
    if system is not None and system.is_file():
        for line in system.read_text().splitlines():
            for gpu in json.loads(line).get("gpus") or []:
                if isinstance(gpu.get("util"), (int, float)):
                    utils.append(gpu["util"])
    return statistics.median(utils) if utils else None


def ftui_run(cfg: Any, window: Window, batches: tuple[Any, Any] | None) -> dict[str, Any]:
    """Images/s of the window through the Trainer (default callbacks), GPU util and peak memory."""
    import torch

    from core.training import Trainer
    from core.training.callback import Callback

    class Timing(Callback):
        def on_fit_start(self, trainer: Any) -> None:
            if batches is not None:  # compute only: the same device batch every step
                trainer.train_loader = DeviceBatches(*batches, window.warmup + window.steps)
                trainer.val_loader = DeviceBatches(*batches, 1)

        def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
            window.at_start(batch_idx)

        def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            window.at_end(batch_idx)

    if cfg.trainer.compile:
        reset_compiled()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg, callbacks=[Timing()])
    trainer.fit()
    return {"img_s": window.rate, "gpu_util_median": gpu_util(trainer), "peak_gib": peak_memory_gib(window.device),
            "precision": trainer.precision, "fused_optimizer": bool(trainer.optimizer.defaults.get("fused"))}


def plain_run(model_name: str, window: Window, batches: tuple[Any, Any] | None, compile_: bool,
              loader: Any = None, side: int = 224) -> dict[str, Any]:
    """The hand-written loop over the same window: device batches, or ``loader``'s batches."""
    import torch
    import torch.nn.functional as F

    from core.config import ModelConfig
    from core.models import build_model

    device = torch.device(window.device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=model_name), CLASSES, (3, side, side)).model
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    if compile_:
        reset_compiled()
    step_model = torch.compile(model) if compile_ else model
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    step_model.train()
    source = iter(loader) if loader is not None else iter([batches] * (window.warmup + window.steps))
    for index in range(window.warmup + window.steps):
        window.at_start(index)
        x, y = next(source)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = step_model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        window.at_end(index)
    return {"img_s": window.rate, "peak_gib": peak_memory_gib(device)}


def bare_loader(folder: Path, batch: int, workers: int, device: Any, side: int = 224) -> Any:
    """The tutorial pipeline: PIL decoding, float32 normalised in the workers, pinned, shuffled."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    tf = v2.Compose([
        v2.RandomResizedCrop(side, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(0.5), v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    extra = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
    return DataLoader(ImageFolder(str(folder), transform=tf), batch_size=batch, shuffle=True, drop_last=True,
                      num_workers=workers, pin_memory=torch.device(device).type == "cuda", **extra)


def main() -> None:
    p = harness.parser("gpu_throughput", __doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,resnet50", help="Comma-separated model names.")
    p.add_argument("--compile", action="store_true", help="Also measure the compute variant under torch.compile.")
    p.add_argument("--compile-models", default="", help="Comma-separated models to compile (as --compile, for those).")
    p.add_argument("--no-loader", action="store_true", help="Leave out the variant through the real loaders.")
    p.add_argument("--warmup", type=int, default=10, help="Training batches before the timed window.")
    p.add_argument("--steps", type=int, default=30, help="Training batches in the timed window.")
    p.add_argument("--workers", default="auto", help="Loader workers of the loader variant (both pipelines).")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="Run the same code on the CPU with toy sizes, to check the script where no GPU is.")
    args = p.parse_args()
    import torch

    from core.data.loader import resolve_num_workers

    models = [m for m in args.models.split(",") if m]
    device = "cpu" if args.cpu_dry_run else "cuda"
    side = 32 if args.cpu_dry_run else 224  # the dry run checks the code, at toy sizes
    if not args.cpu_dry_run and not torch.cuda.is_available():
        note = "no CUDA device on this machine: nothing measured (run it where a GPU is)"
        print(note)
        harness.report("gpu_throughput", "GPU throughput", [
            {"measure": "images/s", "value": None, "status": "skipped", "note": note}],
            {"skipped": True, "reason": note}, args.out, quick=args.quick)
        return
    batch_of = dict(BATCH)
    if args.cpu_dry_run or args.quick:
        args.warmup, args.steps = 1, 2
    if args.cpu_dry_run:
        batch_of = {m: 4 for m in models}
    workers = resolve_num_workers(args.workers if args.workers == "auto" else int(args.workers))
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run: figures not meaningful)"
    results: dict[str, Any] = {"device": name, "compile": args.compile or args.compile_models, "warmup": args.warmup,
                               "steps": args.steps,
                               "workers": workers, "models": {}}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ftui-bench-gpu-") as tmp:
        root = Path(tmp)
        folder = root / "jpegs"
        if not args.no_loader:
            per_epoch = max(batch_of.values()) * (args.warmup + args.steps + 2)
            harness.write_jpeg_folder(folder, per_epoch, side, CLASSES)
        for model in models:
            batch = batch_of.get(model, 64)
            g = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(batch, 3, side, side, device=device, generator=g).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, CLASSES, (batch,), device=device, generator=g)
            found: dict[str, Any] = {"batch": batch}
            compiled = args.compile or model in args.compile_models.split(",")
            variants = [("compute", False)] + ([("compute_compiled", True)] if compiled else [])
            for key, compile_ in variants:
                cfg = ftui_config(root, f"{model}-{key}", model, batch, args.warmup + args.steps, compile_, device)
                plain = plain_run(model, Window(device, args.warmup, args.steps, batch), (x, y), compile_, side=side)
                ftui = ftui_run(cfg, Window(device, args.warmup, args.steps, batch), (x, y))
                found[key] = {"plain": plain, "ftui": ftui, "ratio": ftui["img_s"] / plain["img_s"]}
            if not args.no_loader:
                cfg = ftui_config(root, f"{model}-loader", model, batch, args.warmup + args.steps, False, device,
                                  folder=folder, workers=workers, side=side)
                loader = bare_loader(folder, batch, workers, device, side)
                plain = plain_run(model, Window(device, args.warmup, args.steps, batch), None, False, loader=loader,
                                  side=side)
                del loader
                ftui = ftui_run(cfg, Window(device, args.warmup, args.steps, batch), None)
                found["loader"] = {"plain": plain, "ftui": ftui, "ratio": ftui["img_s"] / plain["img_s"]}
            results["models"][model] = found
            for key, got in found.items():
                if not isinstance(got, dict):
                    continue
                tag = f"{model} {side}px batch {batch}, {key.replace('_', ' ')}"
                util = got["ftui"].get("gpu_util_median")
                rows += [
                    {"measure": f"{tag}: hand-written", "value": got["plain"]["img_s"], "unit": "img/s"},
                    {"measure": f"{tag}: ftui Trainer", "value": got["ftui"]["img_s"], "unit": "img/s",
                     "note": f"GPU util median {util}%" if util is not None else "no GPU telemetry"},
                    {"measure": f"{tag}: ftui / hand-written", "value": got["ratio"], "unit": "x",
                     "target": ">= 0.97", "status": harness.verdict(got["ratio"], 0.97, lower_is_better=False)},
                ]
                print(f"{tag}: plain {got['plain']['img_s']:,.0f} img/s, ftui {got['ftui']['img_s']:,.0f} img/s "
                      f"({got['ratio']:.3f}x)", flush=True)
    harness.report("gpu_throughput", "GPU throughput: Trainer against a hand-written loop", rows, results, args.out,
                   quick=args.quick or args.cpu_dry_run)


if __name__ == "__main__":
    main()
