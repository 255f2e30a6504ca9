"""Benchmark 1 — trainer overhead: ftui's Trainer (default callbacks on) against a plain PyTorch loop.

Both train the same model (``core.models.build_model`` of the quickstart config), on the same data
(``core.data`` loaders, so both see identical batches), from the same seed, with the same AdamW (weight
decay off for biases and norm parameters, as ftui groups them) and a constant lr (``schedule: none``:
the schedule formula is not what is measured). The plain loop validates every epoch too. The trainer
runs with every default callback: recorder, checkpoint per epoch (last.pt and best.pt), learning-rate
monitor, TensorBoard, telemetry, layer statistics, control polling and plain progress (to /dev/null).

Epoch time is train + validation (+ checkpointing for ftui), from a callback's ``on_train_epoch_start``
to ``on_train_epoch_end``. Repetitions are interleaved (ABBA order) and the result is the median of the
per-repetition ratios, in wall time and in process CPU time (which a busy machine disturbs less).
Losses of every step must agree to 5 decimals. The same job also trains through PyTorch Lightning's
``Trainer`` (the ``bench`` extra installs it; ``.[dev]`` does too): the same model, data loaders,
optimizer and seed in a ``LightningModule``, with Lightning's logger, checkpointing, progress bar and
model summary off — what its loop costs — and its losses are compared step by step as well.
Both loops run under the same malloc settings: ftui's (``trainer.steady_malloc``, set before the first
run) or, with ``--malloc default``, glibc's own; the minor page faults of each epoch are reported.

    python benchmarks/trainer_overhead.py [--reps 5] [--epochs 2] [--malloc steady|default] [--quick]
    python benchmarks/trainer_overhead.py --config sample_configs/byo_convmixer.yaml   # a user model and dataset

With ``--config`` another config is measured the same way (a model and data of the user's own: the
plain loop builds them through the same ``core.models``/``core.data`` calls); ``--train-size`` and
``--val-size`` then set ``data.kwargs.train_size``/``val_size`` for a code source.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import harness
from core.config import Config, load_config
from core.training.callback import Callback

QUICKSTART = harness.REPO / "sample_configs" / "quickstart.yaml"
TARGET_RATIO = 1.03


class EpochTimer(Callback):
    """Records wall and CPU time of each epoch (train + validation + epoch-end callbacks) and step losses."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.losses: list[torch.Tensor] = []
        self.faults: list[int] = []
        self._t0 = (0.0, 0.0)
        self._faults0 = 0

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._faults0 = minor_faults()
        self._t0 = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(outputs["loss"])  # a device tensor: no host sync here

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.wall.append(time.perf_counter() - self._t0[0])
        self.cpu.append(time.process_time() - self._t0[1])
        self.faults.append(minor_faults() - self._faults0)


def minor_faults() -> int:
    """Page faults of this process so far that needed no disk read (fresh or returned memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bench_config(root: Path, args: Any) -> Config:
    """The quickstart config (or ``--config``), resized for the benchmark, recording into ``root``."""
    path = Path(args.config) if args.config else QUICKSTART
    code_source = ":" in str(load_config(path).data.source)
    sizes = "data.kwargs" if code_source else "data.shapes"
    return load_config(
        path,
        [
            f"run.root={root}",
            "run.name=bench",
            "schedule.name=none",
            f"trainer.epochs={args.epochs}",
            f"{sizes}.train_size={args.train_size}",
            f"{sizes}.val_size={args.val_size}",
            "logging.progress=plain",
            f"trainer.steady_malloc={str(args.malloc == 'steady').lower()}",
        ],
    )


def run_ftui(cfg: Config) -> dict[str, Any]:
    """One ``Trainer.fit`` with the default callbacks plus the timer."""
    from core.training import Trainer

    timer = EpochTimer()
    t0 = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        trainer = Trainer(cfg, callbacks=[timer])
        trainer.fit()
    total = time.perf_counter() - t0
    val_loss = trainer.callback_metrics.get("val/loss", float("nan"))
    # The trainer's own account of its input pipeline: the share of each logging window spent
    # waiting for the next batch (the quickstart loads in one worker process).
    waits = []
    if trainer.run is not None:
        for line in (Path(trainer.run.path) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("split") == "train" and isinstance(row.get("data_wait"), (int, float)):
                waits.append(float(row["data_wait"]))
    callbacks = [type(cb).__name__ for cb in trainer.callbacks if cb is not timer]
    return {
        "wall": timer.wall, "cpu": timer.cpu, "faults": timer.faults, "losses": torch.stack(timer.losses).tolist(),
        "val_loss": val_loss, "total": total, "callbacks": callbacks, "data_wait": waits,
    }


def attribute(cfg: Config) -> dict[str, Any]:
    """One extra, untimed-for-the-ratio run that times every callback hook inside the epochs.

    Returns seconds per (callback, hook) summed over the epochs, and the epochs' wall time, so the
    share of each callback in an epoch can be read off (hooks at fit start/end are left out).
    """
    from collections import defaultdict

    from core.training import Trainer

    spent: dict[str, float] = defaultdict(float)
    timer = EpochTimer()
    in_epoch = [False]

    class HookTimingTrainer(Trainer):
        def _call(self, hook: str, *args: Any) -> None:
            if hook == "on_train_epoch_start":
                in_epoch[0] = True
            for cb in self.callbacks:
                t0 = time.perf_counter()
                getattr(cb, hook)(self, *args)
                if in_epoch[0] and cb is not timer:
                    spent[f"{type(cb).__name__}.{hook}"] += time.perf_counter() - t0
            if hook == "on_train_epoch_end":
                in_epoch[0] = False

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        HookTimingTrainer(cfg, callbacks=[timer]).fit()
    epochs = sum(timer.wall)
    per_callback: dict[str, float] = defaultdict(float)
    for key, seconds in spent.items():
        per_callback[key.split(".")[0]] += seconds
    return {
        "epochs_s": epochs,
        "hooks_s": sum(spent.values()),
        "share": sum(spent.values()) / epochs if epochs else float("nan"),
        "per_callback_share": {k: v / epochs for k, v in sorted(per_callback.items(), key=lambda kv: -kv[1])},
        "top_hooks_ms": {k: v * 1e3 for k, v in sorted(spent.items(), key=lambda kv: -kv[1])[:12]},
    }


def run_plain(cfg: Config) -> dict[str, Any]:
    """The hand-written loop: the same data, model, seed and optimizer, validated every epoch."""
    t_start = time.perf_counter()
    model, opt, train, val = _plain_parts(cfg)
    wall: list[float] = []
    cpu: list[float] = []
    faults: list[int] = []
    losses: list[torch.Tensor] = []
    val_loss = float("nan")
    for epoch in range(cfg.trainer.epochs):
        f0 = minor_faults()
        t0, c0 = time.perf_counter(), time.process_time()
        train.set_epoch(epoch)
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        model.eval()
        total, count = torch.zeros((), dtype=torch.float64), 0
        with torch.no_grad():
            for x, y in val:
                total += F.cross_entropy(model(x), y, reduction="sum").double()
                count += int(y.shape[0])
        val_loss = float(total) / max(1, count)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(minor_faults() - f0)
    train.close()
    val.close()
    return {
        "wall": wall, "cpu": cpu, "faults": faults, "losses": torch.stack(losses).tolist(), "val_loss": val_loss,
        "total": time.perf_counter() - t_start,
    }


def lightning_note() -> str:
    """Why the Lightning comparison cannot run (empty when it can)."""
    try:
        import lightning  # noqa: F401
    except ImportError:
        return "PyTorch Lightning is not installed here: comparison skipped (pip install -e '.[bench]' adds it)."
    return ""


def _plain_parts(cfg: Config) -> tuple[Any, Any, Any, Any]:
    """What the plain loop and the Lightning module share: model, optimizer and loaders, seeded alike."""
    from core.data import build_data, build_loader
    from core.models import build_model

    seed = cfg.run.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.trainer.cpu_threads is not None:
        torch.set_num_threads(cfg.trainer.cpu_threads)
    data = build_data(cfg.data, seed)
    model = build_model(cfg.model, data.num_classes, data.input_shape, facts=data.facts()).model
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and not n.endswith("bias"))]
    o = cfg.optim
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o.lr, betas=o.betas, eps=o.eps,
    )
    train = build_loader(data.train, cfg.data, split="train", seed=seed)
    val = build_loader(data.val, cfg.data, split="val", seed=seed)
    return model, opt, train, val


def run_lightning(cfg: Config) -> dict[str, Any]:
    """The same job through Lightning's Trainer: its loop, hooks and bookkeeping, nothing written."""
    import logging
    import warnings

    import lightning as L

    t_start = time.perf_counter()
    model, opt, train, val = _plain_parts(cfg)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.losses: list[torch.Tensor] = []
            self.val_total = torch.zeros((), dtype=torch.float64)
            self.val_count = 0

        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            # Lightning's hook for work on the device: the loaders' workers send uint8 images, and the
            # EpochLoader finishes them (normalises) after the transfer, as ftui's Trainer does
            return (train if self.trainer.training else val).prepare(batch)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            self.losses.append(loss.detach())
            return loss

        def on_validation_epoch_start(self) -> None:
            self.val_total, self.val_count = torch.zeros((), dtype=torch.float64), 0

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.val_total += F.cross_entropy(self.model(x), y, reduction="sum").double()
            self.val_count += int(y.shape[0])

        def configure_optimizers(self) -> Any:
            return opt

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self.faults: list[int] = []
            self._t0 = (0.0, 0.0, 0)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._t0 = (time.perf_counter(), time.process_time(), minor_faults())

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            # Lightning validates at the end of the epoch, before this hook: train + validation, as for the others
            self.wall.append(time.perf_counter() - self._t0[0])
            self.cpu.append(time.process_time() - self._t0[1])
            self.faults.append(minor_faults() - self._t0[2])

    module, timer = Module(), Timer()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings(), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=cfg.trainer.epochs, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            use_distributed_sampler=False, callbacks=[timer],
        )
        # the loaders' own DataLoaders: Lightning calls set_epoch on their EpochSampler each epoch
        trainer.fit(module, train_dataloaders=train.loader, val_dataloaders=val.loader)
    train.close()
    val.close()
    return {
        "wall": timer.wall, "cpu": timer.cpu, "faults": timer.faults, "losses": torch.stack(module.losses).tolist(),
        "val_loss": float(module.val_total) / max(1, module.val_count), "total": time.perf_counter() - t_start,
        "version": L.__version__,
    }


def main() -> None:
    p = harness.parser("trainer_overhead", __doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="Interleaved repetitions of each loop.")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--config", type=Path, default=None, help="Measure this config instead of the quickstart's.")
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--malloc", choices=("steady", "default"), default="steady",
                   help="steady (ftui's default, trainer.steady_malloc): glibc keeps freed memory, set here for "
                        "both loops before the first run; default: glibc's own settings for both.")
    p.add_argument("--no-lightning", dest="lightning", action="store_false",
                   help="Leave out the run of the same job through PyTorch Lightning's Trainer.")
    args = p.parse_args()
    if args.malloc == "steady":
        from core.training.runtime import steady_malloc

        if not steady_malloc():
            print("note: steady malloc not applied (not glibc, or MALLOC_* variables set)")
    if args.quick:
        args.reps, args.epochs, args.train_size, args.val_size = 1, 1, 256, 128

    note = "" if args.lightning else "left out (--no-lightning)"
    note = note or lightning_note()
    loops = {"plain": run_plain, "ftui": run_ftui}
    if not note:
        loops["lightning"] = run_lightning
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in loops}
    with tempfile.TemporaryDirectory(prefix="ftui-bench-") as tmp:
        for rep in range(args.reps):
            # interleaved, the order reversed every other repetition (ABBA with two loops, ABCCBA with three)
            order = list(loops) if rep % 2 == 0 else list(reversed(loops))
            for which in order:
                cfg = bench_config(Path(tmp) / f"rep{rep}-{which}", args)
                result = loops[which](cfg)
                runs[which].append(result)
                print(f"rep {rep + 1}/{args.reps} {which:9s}: epochs {', '.join(f'{w:.2f}s' for w in result['wall'])}",
                      flush=True)
    plain_runs, ftui_runs = runs["plain"], runs["ftui"]
    lightning_runs = runs.get("lightning", [])
    with tempfile.TemporaryDirectory(prefix="ftui-bench-") as tmp:
        attribution = attribute(bench_config(Path(tmp) / "attribution", args))
    # Per repetition, the sum of its epochs; ratios paired by repetition, then the median.
    ratio_wall = [sum(f["wall"]) / sum(q["wall"]) for f, q in zip(ftui_runs, plain_runs)]
    ratio_cpu = [sum(f["cpu"]) / sum(q["cpu"]) for f, q in zip(ftui_runs, plain_runs)]
    plain_epoch = harness.summary(w for r in plain_runs for w in r["wall"])
    ftui_epoch = harness.summary(w for r in ftui_runs for w in r["wall"])
    diffs = [abs(a - b) for f, q in zip(ftui_runs, plain_runs) for a, b in zip(f["losses"], q["losses"])]
    steps_equal = all(len(f["losses"]) == len(q["losses"]) for f, q in zip(ftui_runs, plain_runs))
    max_diff = max(diffs) if diffs else float("nan")
    val_diff = max(abs(f["val_loss"] - q["val_loss"]) for f, q in zip(ftui_runs, plain_runs))
    losses_equal = steps_equal and max_diff < 0.5e-5
    med_wall = harness.summary(ratio_wall)["median"]
    med_cpu = harness.summary(ratio_cpu)["median"]
    lightning: dict[str, Any] = {"compared": not note, "note": note}
    if lightning_runs:
        l_wall = [sum(f["wall"]) / sum(q["wall"]) for f, q in zip(ftui_runs, lightning_runs)]
        l_cpu = [sum(f["cpu"]) / sum(q["cpu"]) for f, q in zip(ftui_runs, lightning_runs)]
        l_plain = [sum(q["wall"]) / sum(p["wall"]) for q, p in zip(lightning_runs, plain_runs)]
        l_diffs = [abs(a - b) for q, p in zip(lightning_runs, plain_runs) for a, b in zip(q["losses"], p["losses"])]
        l_steps = all(len(q["losses"]) == len(p["losses"]) for q, p in zip(lightning_runs, plain_runs))
        lightning.update(
            version=lightning_runs[0]["version"],
            epoch_s=harness.summary(w for r in lightning_runs for w in r["wall"]),
            ftui_over_lightning_wall=l_wall, ftui_over_lightning_cpu=l_cpu, lightning_over_plain_wall=l_plain,
            ftui_over_lightning_wall_median=harness.summary(l_wall)["median"],
            ftui_over_lightning_cpu_median=harness.summary(l_cpu)["median"],
            lightning_over_plain_wall_median=harness.summary(l_plain)["median"],
            max_loss_diff_vs_plain=max(l_diffs) if l_diffs else float("nan"),
            losses_equal_5dp=l_steps and bool(l_diffs) and max(l_diffs) < 0.5e-5,
        )
    rows = [
        {"measure": "plain loop epoch (median)", "value": plain_epoch["median"], "unit": "s",
         "note": f"{args.train_size} train + {args.val_size} val samples"},
        {"measure": "ftui Trainer epoch (median)", "value": ftui_epoch["median"], "unit": "s",
         "note": "default callbacks + checkpoints"},
        {"measure": "ftui / plain, wall (median of reps)", "value": med_wall, "unit": "x",
         "target": f"<= {TARGET_RATIO}", "status": harness.verdict(med_wall, TARGET_RATIO),
         "note": f"per rep: {', '.join(f'{r:.3f}' for r in ratio_wall)}"},
        {"measure": "ftui / plain, CPU time (median of reps)", "value": med_cpu, "unit": "x",
         "target": f"<= {TARGET_RATIO}", "status": harness.verdict(med_cpu, TARGET_RATIO),
         "note": f"per rep: {', '.join(f'{r:.3f}' for r in ratio_cpu)}"},
        {"measure": "max |loss difference| per step", "value": max_diff, "unit": "",
         "target": "< 5e-6", "status": "ok" if losses_equal else "MISS",
         "note": f"{len(diffs)} steps compared; val loss diff {val_diff:.2e}"},
        {"measure": "setup + teardown, ftui (median)", "value":
         harness.summary(f["total"] - sum(f["wall"]) for f in ftui_runs)["median"], "unit": "s",
         "note": "outside epochs: data, model tree, TB graph, final checkpoint"},
        {"measure": "setup, plain (median)", "value":
         harness.summary(q["total"] - sum(q["wall"]) for q in plain_runs)["median"], "unit": "s"},
    ]
    faults_plain = harness.summary(n for q in plain_runs for n in q["faults"])["median"]
    faults_ftui = harness.summary(n for f in ftui_runs for n in f["faults"])["median"]
    rows.append({"measure": "page faults per epoch, plain / ftui (median)", "value": f"{faults_plain:,.0f} / {faults_ftui:,.0f}",
                 "unit": "", "note": f"malloc {args.malloc}: minor faults, i.e. memory the epoch faulted in afresh"})
    waits = harness.summary(w for f in ftui_runs for w in f["data_wait"])
    rows.append({"measure": "data_wait of the ftui runs (median)", "value": waits["median"], "unit": "fraction",
                 "note": "share of step time waiting for batches (trainer's metric; data.num_workers 1)"})
    top = ", ".join(f"{k} {v:.1%}" for k, v in list(attribution["per_callback_share"].items())[:4])
    rows.append({"measure": "callback hooks' share of an epoch", "value": attribution["share"], "unit": "fraction",
                 "note": f"one instrumented run: {top}"})
    if lightning_runs:
        rows += [
            {"measure": "Lightning Trainer epoch (median)", "value": lightning["epoch_s"]["median"], "unit": "s",
             "note": f"lightning {lightning['version']}: logger, checkpoints, progress bar off"},
            {"measure": "Lightning / plain, wall (median of reps)", "value": lightning["lightning_over_plain_wall_median"],
             "unit": "x", "note": f"per rep: {', '.join(f'{r:.3f}' for r in lightning['lightning_over_plain_wall'])}"},
            {"measure": "ftui / Lightning, wall (median of reps)", "value": lightning["ftui_over_lightning_wall_median"],
             "unit": "x", "note": f"per rep: {', '.join(f'{r:.3f}' for r in lightning['ftui_over_lightning_wall'])}"},
            {"measure": "ftui / Lightning, CPU time (median of reps)",
             "value": lightning["ftui_over_lightning_cpu_median"], "unit": "x"},
            {"measure": "max |loss difference| per step, Lightning vs plain", "value": lightning["max_loss_diff_vs_plain"],
             "unit": "", "target": "< 5e-6", "status": "ok" if lightning["losses_equal_5dp"] else "MISS"},
        ]
    else:
        rows.append({"measure": "Lightning Trainer", "value": None, "status": "skipped", "note": note})
    results = {
        "config": {"reps": args.reps, "epochs": args.epochs, "train_size": args.train_size, "val_size": args.val_size,
                   "base": str(args.config or "sample_configs/quickstart.yaml"), "threads": torch.get_num_threads(),
                   "malloc": args.malloc},
        "faults_per_epoch": {"plain": [q["faults"] for q in plain_runs], "ftui": [f["faults"] for f in ftui_runs]},
        "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu,
        "ratio_wall_median": med_wall, "ratio_cpu_median": med_cpu,
        "plain_epoch_s": plain_epoch, "ftui_epoch_s": ftui_epoch,
        "plain_epochs": [r["wall"] for r in plain_runs], "ftui_epochs": [r["wall"] for r in ftui_runs],
        "max_loss_diff": max_diff, "val_loss_diff": val_diff, "losses_equal_5dp": losses_equal,
        "steps": len(plain_runs[0]["losses"]) if plain_runs else 0,
        "callbacks": ftui_runs[0]["callbacks"] if ftui_runs else [],
        "lightning": lightning,
        "attribution": attribution,
        "data_wait": waits,
    }
    harness.report("trainer_overhead", "Trainer overhead vs a plain PyTorch loop", rows, results, args.out,
                   quick=args.quick)


if __name__ == "__main__":
    main()
