"""Benchmark 6 — GPU throughput: resnet18 images/s through ftui's Trainer and a hand-written loop.

Runs only where CUDA exists; elsewhere it writes a JSON that says so and exits 0. For 32x32 and
224x224 random images, with ``bf16-mixed`` + ``channels_last`` (and, with ``--compile``,
``torch.compile``), the same resnet18 (``core.models.build_model``) trains through:

* ftui's ``Trainer`` with its default callbacks (recorder, checkpoints, telemetry, layer statistics,
  control, TensorBoard), its loaders replaced after setup by the same pre-made device batches;
* a hand-written loop: autocast(bf16), channels_last, AdamW, ``zero_grad(set_to_none=True)``.

Images/s are over the epochs after the first (warm-up, compilation); the ratio is ftui / hand-written.
GPU utilisation is the median ``util`` of the run's ``system.jsonl`` (ftui's own telemetry).

    python benchmarks/gpu_throughput.py [--compile] [--epochs 3] [--steps 60] [--quick]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import harness

SIZES = {32: 256, 224: 128}  # image side -> batch size


class DeviceBatches:
    """The interface of ``core.data.EpochLoader`` over the same pre-made device batch, ``steps`` times."""

    def __init__(self, x: Any, y: Any, steps: int) -> None:
        self.x, self.y, self.steps = x, y, steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def set_start_batch(self, index: int) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter([(self.x, self.y)] * self.steps)


def sync(device: str) -> None:
    """Wait for the device's queued work (timing needs it on CUDA)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def config(root: Path, side: int, batch: int, epochs: int, compile_: bool, device: str) -> Any:
    from core.config import config_from_dict

    return config_from_dict({
        "run": {"name": f"gpu{side}", "root": str(root)},
        "data": {"source": "shapes", "shapes": {"image_size": side, "train_size": batch, "val_size": batch, "test_size": 0},
                 "batch_size": batch, "normalize": "none"},
        "model": {"name": "resnet18"},
        "optim": {"name": "adamw", "lr": 1e-3},
        "schedule": {"name": "none"},
        "trainer": {"epochs": epochs, "precision": "bf16-mixed", "channels_last": True, "compile": compile_,
                    "device": device},
        "logging": {"progress": "none", "tensorboard_graph": False},
    })


def ftui_rate(cfg: Any, x: Any, y: Any, steps: int) -> tuple[float, float | None]:
    """(images/s after the first epoch, median GPU util %) through the Trainer."""
    import torch

    from core.training import Trainer
    from core.training.callback import Callback

    class Swap(Callback):
        """After setup: train and validate on the pre-made device batches; time each epoch."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0

        def on_fit_start(self, trainer: Any) -> None:
            trainer.train_loader = DeviceBatches(x, y, steps)
            trainer.val_loader = DeviceBatches(x, y, 1)

        def on_train_epoch_start(self, trainer: Any) -> None:
            sync(x.device.type)
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any) -> None:
            sync(x.device.type)
            self.times.append(time.perf_counter() - self.t0)

    swap = Swap()
    trainer = Trainer(cfg, callbacks=[swap])
    trainer.fit()
    rate = (steps + 1) * x.shape[0] / statistics.median(swap.times[1:] or swap.times)
    utils = []
    system = Path(trainer.run.path) / "system.jsonl" if trainer.run is not None else None
    if system is not None and system.is_file():
        for line in system.read_text().splitlines():
            for gpu in json.loads(line).get("gpus") or []:
                if isinstance(gpu.get("util"), (int, float)):
                    utils.append(gpu["util"])
    return rate, (statistics.median(utils) if utils else None)


def plain_rate(cfg: Any, x: Any, y: Any, steps: int, epochs: int) -> float:
    """Images/s of the hand-written loop with the same settings (one val batch per epoch, as above)."""
    import torch
    import torch.nn.functional as F

    from core.models import build_model

    torch.manual_seed(0)
    device = x.device.type
    model = build_model(cfg.model, 6, tuple(x.shape[1:])).model.to(x.device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    step_model = torch.compile(model) if cfg.trainer.compile else model
    times = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        step_model.train()
        for _ in range(steps):
            with torch.autocast(device, dtype=torch.bfloat16):
                logits = step_model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        step_model.eval()
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
            step_model(x)
        sync(device)
        times.append(time.perf_counter() - t0)
    return (steps + 1) * x.shape[0] / statistics.median(times[1:] or times)


def main() -> None:
    p = harness.parser("gpu_throughput", __doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="Also torch.compile the model (both loops).")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=60, help="Training steps per epoch.")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="Run the same code on the CPU with tiny sizes, to check the script where no GPU is.")
    args = p.parse_args()
    import torch

    device = "cpu" if args.cpu_dry_run else "cuda"
    sizes = {32: 8} if args.cpu_dry_run else SIZES
    if args.cpu_dry_run:
        args.epochs, args.steps = 2, 2
    elif not torch.cuda.is_available():
        note = "no CUDA device on this machine: nothing measured (run it where a GPU is)"
        print(note)
        harness.report("gpu_throughput", "GPU throughput: resnet18", [
            {"measure": "resnet18 images/s", "value": None, "status": "skipped", "note": note}],
            {"skipped": True, "reason": note}, args.out, quick=args.quick)
        return
    if args.quick:
        args.epochs, args.steps = 2, 3
    rows: list[dict[str, Any]] = []
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run: figures not meaningful)"
    results: dict[str, Any] = {"device": name, "compile": args.compile, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="ftui-bench-gpu-") as tmp:
        for side, batch in sizes.items():
            g = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(batch, 3, side, side, device=device, generator=g).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 6, (batch,), device=device, generator=g)
            cfg = config(Path(tmp), side, batch, args.epochs, args.compile, device)
            plain = plain_rate(cfg, x, y, args.steps, args.epochs)
            ftui, util = ftui_rate(cfg, x, y, args.steps)
            ratio = ftui / plain
            results["sizes"][side] = {"batch": batch, "plain_img_s": plain, "ftui_img_s": ftui, "ratio": ratio,
                                      "gpu_util_median": util}
            tag = f"{side}x{side}, batch {batch}, bf16-mixed + channels_last{' + compile' if args.compile else ''}"
            rows += [
                {"measure": f"hand-written loop {side}px", "value": plain, "unit": "img/s", "note": tag},
                {"measure": f"ftui Trainer {side}px", "value": ftui, "unit": "img/s",
                 "note": f"GPU util median {util}%" if util is not None else "no GPU telemetry"},
                {"measure": f"ftui / hand-written {side}px", "value": ratio, "unit": "x", "target": ">= 0.97",
                 "status": harness.verdict(ratio, 0.97, lower_is_better=False)},
            ]
            print(f"{side}px: plain {plain:,.0f} img/s, ftui {ftui:,.0f} img/s ({ratio:.3f}x), util {util}", flush=True)
    harness.report("gpu_throughput", "GPU throughput: resnet18", rows, results, args.out,
                   quick=args.quick or args.cpu_dry_run)


if __name__ == "__main__":
    main()
