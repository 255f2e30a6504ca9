"""Benchmark 7 — explaining: Grad-CAM time after the model is loaded, resnet18 samples/s, gallery redraw.

* the quickstart model (``runs/quickstart/checkpoints/best.pt``, trained here first when missing, or
  ``--checkpoint PATH``): Grad-CAM for 64 test samples through ``Explainer.explain`` once the
  checkpoint is open (target < 3 s on 2 CPU cores), with the config's one thread and with 2; the
  first call (Captum's import and warm-up) and saliency / Integrated Gradients beside it;
* resnet18 at 224x224 (random weights: the time does not depend on them): samples/s of Grad-CAM,
  saliency and Integrated Gradients on the device ``auto`` picks (a GPU where there is one);
* the app's gallery: a page of real tiles drawn by ``ExplainGallery.show`` in a headless app at
  120x40 and 80x24, until the screen has been refreshed (target < 100 ms), for 16-pixel quickstart
  samples and 224-pixel ones (shrunk for the terminal on every draw).

    python benchmarks/explain.py [--checkpoint PATH] [--reps 5] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

TARGET_GRADCAM_S = 3.0
TARGET_REDRAW_MS = 100.0


def quickstart_checkpoint(path: Path | None, quick: bool, tmp: Path) -> Path:
    """The quickstart's best checkpoint (trained into ``tmp`` when there is none; untrained with --quick)."""
    if path is not None:
        return path
    default = harness.REPO / "runs" / "quickstart" / "checkpoints" / "best.pt"
    if quick:
        overrides = {"shapes": {"train_size": 64, "val_size": 64, "test_size": 64}, "num_workers": 0}
        return untrained_checkpoint(tmp, "quickstart", harness.REPO / "sample_configs" / "quickstart.yaml", overrides)
    if default.is_file():
        return default
    cmd = [sys.executable, "-m", "tui.cli", "run", str(harness.REPO / "sample_configs" / "quickstart.yaml"), "-q",
           "--set", f"run.root={tmp}"]
    print("training the quickstart model first:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=harness.REPO)
    return tmp / "quickstart" / "checkpoints" / "best.pt"


def untrained_checkpoint(tmp: Path, name: str, config: Path | None, data: dict[str, Any],
                         model: dict[str, Any] | None = None) -> Path:
    """A checkpoint saved right after setup (the time to explain does not depend on the weights)."""
    import yaml

    from core.config import config_from_dict
    from core.training.trainer import Trainer

    raw: dict[str, Any] = yaml.safe_load(config.read_text()) if config is not None else {}
    raw["run"] = {"name": name, "root": str(tmp), "seed": 0}
    raw.setdefault("data", {"source": "shapes"})
    for key, value in data.items():
        raw["data"][key] = {**raw["data"].get(key, {}), **value} if isinstance(value, dict) else value
    if model is not None:
        raw["model"] = model
    raw["logging"] = {"progress": "none", "system": False, "tensorboard": False}
    trainer = Trainer(config_from_dict(raw), record=False, default_callbacks=False)
    trainer.setup()
    path = tmp / f"{name}.pt"
    trainer.save_checkpoint(path)
    return path


def resnet_checkpoint(tmp: Path, side: int) -> Path:
    """An untrained resnet18 checkpoint on 6 shape classes at ``side`` pixels."""
    data = {"source": "shapes", "batch_size": 32, "num_workers": 0,
            "shapes": {"image_size": side, "train_size": 64, "val_size": 32, "test_size": 64}}
    return untrained_checkpoint(tmp, "resnet18", None, data, {"name": "resnet18"})


def sync(device: Any) -> None:
    import torch

    if getattr(device, "type", "") == "cuda":
        torch.cuda.synchronize()


def time_explain(ex: Any, indices: list[int], method: str, reps: int) -> tuple[float, list[float]]:
    """(first call, later calls) in seconds."""
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        ex.explain(indices, method=method)
        sync(ex.device)
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def gallery_redraw(pages: list[Any], size: tuple[int, int], reps: int) -> tuple[list[float], list[float], list[float]]:
    """Milliseconds from ``ExplainGallery.show`` to the refreshed screen, alternating ``pages``.

    Returns (wall, CPU time of the process, wall of an idle ``pilot.pause()``): the last is the
    harness's own wait, which the wall figures include.
    """
    from textual.app import App, ComposeResult

    from tui.widgets.explain_gallery import ExplainGallery, plan_layout

    class Bench(App[None]):
        def compose(self) -> ComposeResult:
            yield ExplainGallery(id="gallery")

    times: list[float] = []
    cpu: list[float] = []
    idle: list[float] = []

    async def main() -> None:
        app = Bench()
        async with app.run_test(size=size) as pilot:
            gallery = app.query_one(ExplainGallery)
            side = pages[0].tiles[0].panels[0].shape[0]
            layout = plan_layout(size[0], size[1] - 1, 2, source_side=side)
            for k in range(reps * 2 + 2):
                page = pages[k % len(pages)]
                t0, c0 = time.perf_counter(), time.process_time()
                await gallery.show(page, layout, k % 3)
                await pilot.pause()  # layout, render and the frame to the (headless) driver
                if k >= 2:  # the first two mount the tiles
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                t0 = time.perf_counter()
                await pilot.pause()
                idle.append((time.perf_counter() - t0) * 1000)

    asyncio.run(main())
    return times, cpu, idle


def pages_of(explainer: Any, count: int) -> list[Any]:
    """Two real gallery pages (worst mistakes, then the next ones) from the worker's service, in process."""
    from core.explain.worker import Service

    service = Service()
    service.explainer = explainer  # already open: the service would restore the same checkpoint again
    return [service.do_page("mistakes", offset, count, "gradcam") for offset in (0, count)]


def main() -> None:
    p = harness.parser("explain", __doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="Quickstart checkpoint (default: runs/quickstart).")
    p.add_argument("--reps", type=int, default=5, help="Repetitions of each measurement.")
    args = p.parse_args()
    import torch

    from core.explain.session import Explainer, Selection

    reps = 1 if args.quick else args.reps
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ftui-bench-explain-") as tmp_name:
        tmp = Path(tmp_name)
        ckpt = quickstart_checkpoint(args.checkpoint, args.quick, tmp)
        t0 = time.perf_counter()
        ex = Explainer.open(ckpt)
        open_s = time.perf_counter() - t0
        n = 16 if args.quick else 64
        indices = ex.select(Selection(count=n))
        config_threads = torch.get_num_threads()
        quick_results: dict[str, Any] = {"checkpoint": str(ckpt), "open_s": open_s, "samples": len(indices)}
        for threads in [config_threads] if args.quick else sorted({config_threads, 2}):
            torch.set_num_threads(threads)
            first, later = time_explain(ex, indices, "gradcam", reps)
            med = statistics.median(later)
            quick_results[f"gradcam_{threads}_threads"] = {"first_s": first, "later_s": harness.summary(later)}
            rows.append({"measure": f"quickstart Grad-CAM, {len(indices)} samples, {threads} thread(s)", "value": med,
                         "unit": "s", "target": f"< {TARGET_GRADCAM_S:g}",
                         "status": harness.verdict(med, TARGET_GRADCAM_S),
                         "note": f"after the checkpoint is open ({open_s:.1f} s); first call {first:.2f} s"})
        torch.set_num_threads(2)
        for method in ("saliency", "integrated_gradients"):
            _, later = time_explain(ex, indices, method, reps)
            quick_results[method] = harness.summary(later)
            rows.append({"measure": f"quickstart {method}, {len(indices)} samples, 2 threads",
                         "value": statistics.median(later), "unit": "s"})
        results["quickstart"] = quick_results

        side = 64 if args.quick else 224
        rpath = resnet_checkpoint(tmp, side)
        rex = Explainer.open(rpath)
        torch.set_num_threads(2)
        rn = 4 if args.quick else 32
        rind = rex.select(Selection(count=rn))
        resnet: dict[str, Any] = {"side": side, "samples": len(rind), "device": str(rex.device),
                                  "layer": rex.probe().default}
        for method in ("gradcam", "saliency", "integrated_gradients"):
            count = rind if method != "integrated_gradients" else rind[: max(2, len(rind) // 4)]
            _, later = time_explain(rex, count, method, max(1, reps // 2))
            rate = len(count) / statistics.median(later)
            resnet[method] = {"samples_per_s": rate, "seconds": harness.summary(later), "samples": len(count)}
            rows.append({"measure": f"resnet18 {side}x{side} {method}", "value": rate, "unit": "samples/s",
                         "note": f"{rex.device}, {len(count)} samples a call"
                                 + (", layer " + str(resnet["layer"]) if method == "gradcam" else "")
                                 + (", 32 steps" if method == "integrated_gradients" else "")})
        results["resnet18"] = resnet

        redraw: dict[str, Any] = {}
        for label, explainer in (("quickstart 16 px", ex), (f"resnet18 {side} px", rex)):
            pages = pages_of(explainer, 6)
            for size in ((120, 40),) if args.quick else ((120, 40), (80, 24)):
                ms, cpu_ms, idle_ms = gallery_redraw(pages, size, max(3, reps * 2))
                med = statistics.median(ms)
                redraw[f"{label} {size[0]}x{size[1]}"] = {
                    "wall_ms": harness.summary(ms), "cpu_ms": harness.summary(cpu_ms),
                    "idle_pause_ms": harness.summary(idle_ms)}
                rows.append({"measure": f"gallery redraw, {label}, {size[0]}x{size[1]}", "value": med, "unit": "ms",
                             "target": f"< {TARGET_REDRAW_MS:g}", "status": harness.verdict(med, TARGET_REDRAW_MS),
                             "note": f"show() to the refreshed screen; CPU {statistics.median(cpu_ms):.1f} ms; "
                                     f"an idle pilot.pause() alone {statistics.median(idle_ms):.1f} ms"})
        results["redraw_ms"] = redraw
    harness.report("explain", "Explaining predictions", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
