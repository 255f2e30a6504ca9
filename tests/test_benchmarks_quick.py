"""Each benchmark script runs in ``--quick`` mode and writes JSON whose figures are sane.

These are smoke runs that keep the scripts working, not timed tests: only facts that hold on any
machine are asserted (bit-equal losses, rows read back, files parsed), never a time target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = ("trainer_overhead", "input_pipeline", "dashboard_ingest", "inspect_large", "startup", "gpu_throughput",
              "explain", "compression", "runs_table", "overlay_redraw",
              pytest.param("sweep_overhead", marks=pytest.mark.slow), pytest.param("lora", marks=pytest.mark.slow))


def run_quick(name: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"{name} --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["benchmark"] == name and data["quick"] is True
    assert data["rows"] and all("measure" in row for row in data["rows"])
    assert data["machine"]["cpus"] >= 1 and data["machine"]["date"]
    assert name in proc.stdout  # the table was printed (its title names nothing; the path written does)
    return data["results"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_quick(name: str, tmp_path: Path) -> None:
    results = run_quick(name, tmp_path / f"{name}.json")
    if name == "trainer_overhead":
        # Same seed, data and optimizer: the two loops take identical steps.
        assert results["steps"] > 0
        assert results["losses_equal_5dp"] is True and results["max_loss_diff"] < 5e-6
        assert results["ratio_wall"][0] > 0 and results["ratio_cpu"][0] > 0
        # the same job really trained through Lightning's Trainer (installed by .[dev]), step for step
        lightning = results["lightning"]
        assert lightning["compared"] is True and lightning["losses_equal_5dp"] is True
        assert lightning["ftui_over_lightning_wall"][0] > 0 and lightning["lightning_over_plain_wall"][0] > 0
    elif name == "input_pipeline":
        med = results["medians"]
        assert all(v > 0 and math.isfinite(v) for v in med.values())
        assert 0 < results["data_share_0_workers"] < 1
    elif name == "dashboard_ingest":
        assert results["config"]["rows"] == 20_000 and results["config"]["columns_mb"] > 0
        # ftui watch really reached every view loaded, after its first frame
        assert results["watch_loaded_s"]["median"] > results["watch_first_frame_s"]["median"] > 0
        assert results["headless"]["loaded_s"] >= results["headless"]["first_frame_s"] > 0
        # the loss plot held every train and val row read (the backlog, polls appended, redraw rows)
        assert results["headless"]["loss_points"] >= 20_000
        assert results["headless"]["drawn"]["train"][0] <= 2 * results["headless"]["plot_width"] + 2
    elif name == "inspect_large":
        assert results["config"]["file_bytes"] > 40e6
        assert results["inprocess"][0]["tensors"] == 82
        assert results["peak_rss_mb"]["json"]["max"] > 0
    elif name == "explain":
        quick = results["quickstart"]
        assert quick["samples"] == 16 and quick["open_s"] > 0
        assert all(v["samples_per_s"] > 0 for k, v in results["resnet18"].items() if isinstance(v, dict))
        assert results["resnet18"]["layer"] == "layer3"  # 64 px: layer4 is 2x2, too coarse for the default
        redraws = results["redraw_ms"].values()
        assert len(redraws) == 2 and all(r["wall_ms"]["n"] >= 3 and r["cpu_ms"]["median"] > 0 for r in redraws)
    elif name == "startup":
        seconds = results["seconds"]
        assert seconds["help"]["median"] > seconds["python_pass"]["median"] > 0
        assert seconds["watch_plots"]["median"] > 0 and seconds["watch_header"]["median"] > 0
        assert 0 < seconds["help_cpu"]["median"] and 0 < seconds["watch_plots_cpu"]["median"]
    elif name == "runs_table":
        assert results["config"]["runs"] == 50 and results["headless"]["rows_left"] >= 0
        assert results["open_s"]["median"] > 0 and len(results["headless"]["key_ms"]) == len(results["config"]["query"])
    elif name == "overlay_redraw":
        assert results["headless"]["points_train_loss"] == 3 * 1000
        assert set(results["headless"]["drawn"]) == {"run-00", "run-01", "run-02"}
        # every run's plot was reduced to about two points per column, and carries its markers
        assert all(n <= 2 * results["headless"]["plot_width"] for n in results["headless"]["drawn"].values())
        assert all(n > 0 for n in results["headless"]["markers"].values())
    elif name == "sweep_overhead":
        assert results["added_per_trial_s"]["n"] == 1 and results["bookkeeping_s"]["median"] > 0
        assert results["process_s"]["median"] > results["bookkeeping_s"]["median"]
    elif name == "lora":
        lora, full = results["medians"]["lora"], results["medians"]["full"]
        # the same steps on the same data; LoRA trains a part of what full fine-tuning trains
        assert lora["steps"] == full["steps"] > 0 and lora["total_params"] > full["total_params"] > 0
        assert full["trainable_params"] == full["total_params"] > lora["trainable_params"] > 0
        assert lora["checkpoint_bytes"] < full["checkpoint_bytes"]  # adapters and head, not the base
        assert lora["step_ms"] > 0 and full["step_ms"] > 0 and lora["maxrss_mb"] > 0
    elif name == "gpu_throughput":
        assert results.get("skipped") is True or all(v["ftui_img_s"] > 0 for v in results["sizes"].values())
    elif name == "compression":
        names = [v["name"] for v in results["tables"]["tiny"]["variants"]]
        assert names == ["original", "pruned50", "pruned50-ft1", "int8", "pruned50-ft1-int8"]
        assert all(v["latency_ms"]["onnxruntime"]["1"] > 0 for v in results["tables"]["tiny"]["variants"])


@pytest.mark.slow
def test_gpu_proof_dry_run_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_proof.py --cpu-dry-run: the GPU test module in its CPU mode and the throughput
    benchmark at toy sizes, into the one JSON the proof writes on a GPU (issue 23)."""
    out = tmp_path / "gpu_proof.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_proof.py"), "--cpu-dry-run", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    proof = json.loads(out.read_text())["results"]
    assert proof["dry_run"] is True and proof["ran_on_gpu"] is False and proof["passed"] is True
    cases = {c["name"]: c["outcome"] for c in proof["tests"]["cases"]}
    assert len(cases) >= 8 and "failed" not in cases.values()
    # what the CPU can run ran; what needs CUDA was skipped, and says so
    assert cases["test_resume_is_exact_on_the_gpu_and_a_gpu_checkpoint_resumes_on_the_cpu"] == "passed"
    assert cases["test_compiled_training_survives_a_live_freeze_and_says_it_recompiled"] == "passed"
    assert cases["test_float16_skips_a_bad_step_through_gradscaler_without_a_host_sync"] == "skipped"
    found = proof["throughput"]["results"]["models"]["resnet18"]
    assert found["compute"]["ftui"]["img_s"] > 0 and found["loader"]["plain"]["img_s"] > 0
    assert proof["machine"]["cuda_available"] in (True, False) and proof["seconds"] > 0
