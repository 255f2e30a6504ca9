"""Diagnostics on hand-made telemetry samples and train metrics."""

from __future__ import annotations

import json

from core.system.diagnostics import Thresholds, diagnose

GIB = 1024**3


def _sample(t: float, util: float | None = 10, used: float = 20 * GIB, cpu: float = 40.0, workers: int = 2) -> dict:
    gpu = {"index": 0, "name": "Fake", "util": util, "mem_used": used, "mem_total": 80 * GIB, "torch_reserved": None}
    return {"time": t, "cpu_percent": cpu, "cpu_count": 16, "workers": workers, "gpus": [gpu]}


def _train_rows(t0: float, waits: list[float]) -> list[dict]:
    return [{"step": 20 * i, "epoch": 0, "time": t0 + i, "split": "train", "data_wait": w} for i, w in enumerate(waits)]


def _kinds(findings) -> list[str]:
    return [f.kind for f in findings]


def test_low_gpu_util_while_waiting_for_data_is_an_input_bottleneck() -> None:
    samples = [_sample(100 + i, util=u) for i, u in enumerate([12, 20, 8, 16])]  # mean 14 %
    findings = diagnose(samples, _train_rows(100, [0.6, 0.7, 0.65]))
    assert _kinds(findings) == ["input_bottleneck"]
    finding = findings[0]
    assert finding.level == "warning"
    assert "waited for data 65%" in finding.message and "averaged 14%" in finding.message
    advice = {s.key: s.advice for s in finding.suggestions}
    assert advice["data.num_workers"] == "2 → 4"  # double, capped by the 16 cores
    assert {"data.pin_memory", "data.batch_size", "data.persistent_workers", "data.prefetch_factor"} <= advice.keys()
    json.dumps(finding.to_dict())  # serialisable for the dashboard and events


def test_busy_gpu_or_no_waiting_is_fine() -> None:
    busy = [_sample(100 + i, util=95) for i in range(4)]
    assert diagnose(busy, _train_rows(100, [0.6, 0.7])) == []
    idle = [_sample(100 + i, util=10) for i in range(4)]
    assert diagnose(idle, _train_rows(100, [0.01, 0.02])) == []


def test_saturated_cpu_suggests_cheaper_samples_not_more_workers() -> None:
    samples = [_sample(100 + i, util=10, cpu=97) for i in range(3)]
    (finding,) = diagnose(samples, _train_rows(100, [0.8, 0.8]))
    keys = [s.key for s in finding.suggestions]
    assert "data.num_workers" not in keys and "data.augment" in keys
    assert "CPU is saturated (97% of 16 cores)" in finding.message


def test_zero_workers_is_called_out() -> None:
    samples = [_sample(100 + i, util=5, workers=0) for i in range(3)]
    (finding,) = diagnose(samples, _train_rows(100, [0.5, 0.5]))
    assert "no workers" in finding.message
    assert {s.key: s.advice for s in finding.suggestions}["data.num_workers"] == "0 → 2"


def test_cpu_run_needs_a_higher_wait_and_gets_no_pin_memory_advice() -> None:
    samples = [{"time": 100 + i, "cpu_percent": 50, "cpu_count": 2, "workers": 0, "gpus": []} for i in range(3)]
    assert diagnose(samples, _train_rows(100, [0.4, 0.4])) == []
    (finding,) = diagnose(samples, _train_rows(100, [0.7, 0.7]))
    keys = [s.key for s in finding.suggestions]
    assert "data.pin_memory" not in keys and "GPU" not in finding.message


def test_old_history_outside_the_window_is_ignored() -> None:
    old = [_sample(t, util=5) for t in (0, 1, 2)] + _train_rows(0, [0.9, 0.9])
    recent = [_sample(500 + i, util=90) for i in range(3)]
    samples = [r for r in old if "gpus" in r] + recent
    metrics = [r for r in old if "split" in r] + _train_rows(500, [0.9, 0.9])
    assert diagnose(samples, metrics, Thresholds(window=30)) == []


def test_too_little_evidence_gives_no_verdict() -> None:
    assert diagnose([], []) == []
    assert diagnose([_sample(100, util=5)], _train_rows(100, [0.9])) == []


def test_gpu_memory_nearly_full() -> None:
    samples = [_sample(100, used=40 * GIB), _sample(101, used=78 * GIB)]
    samples[-1]["gpus"][0]["torch_reserved"] = 60 * GIB
    findings = diagnose(samples, [])
    assert _kinds(findings) == ["gpu_memory_full"]
    message = findings[0].message
    # 78 / 80 = 97.5 % -> "98%"; 18 GiB held by others
    assert "GPU 0 (Fake) memory is 98% full (78.0 of 80.0 GiB)" in message
    assert "18.0 GiB of it is held outside" in message
    assert [s.key for s in findings[0].suggestions][0] == "data.batch_size"


def test_memory_full_drops_the_larger_batch_advice() -> None:
    samples = [_sample(100 + i, util=10, used=79 * GIB) for i in range(3)]
    findings = diagnose(samples, _train_rows(100, [0.6, 0.6]))
    assert _kinds(findings) == ["input_bottleneck", "gpu_memory_full"]
    assert "data.batch_size" not in [s.key for s in findings[0].suggestions]


def test_missing_figures_are_skipped_not_counted_as_zero() -> None:
    samples = [_sample(100 + i, util=None, used=79 * GIB) for i in range(3)]
    for s in samples:
        s["gpus"][0]["mem_total"] = None
    # util unknown: treated like a CPU run (needs wait >= 0.5); memory unknown: no memory finding.
    assert diagnose(samples, _train_rows(100, [0.4, 0.4])) == []
