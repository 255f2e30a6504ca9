"""The GPU proof (issue 23): one script that shows ftui's CUDA paths correct and fast on a lent GPU.

1. the machine: GPU name, compute capability, memory, driver (NVML), torch and CUDA versions;
2. the GPU test module, ``tests/test_gpu_paths.py`` (bf16, fp16 + GradScaler, channels_last,
   torch.compile with a live freeze, resume on the GPU and on the CPU from a GPU checkpoint,
   deterministic runs, NVML figures, no host sync in a step), each test's outcome and time;
3. ``benchmarks/gpu_throughput.py`` for resnet18 and resnet50 at 224x224 against the hand-written
   loop (compute, the real loaders; resnet18 also compiled);

and writes everything to one JSON (``--out``, default ``benchmarks/results/gpu_proof.json``). Each stage
has a time limit, so the whole stays under 8 minutes on one GPU; a stage that runs out is recorded as
such. Exit code 0 when every test passed (or was skipped) and the benchmark finished.

``--cpu-dry-run`` runs the same stages on the CPU at toy sizes (the test module in its dry-run mode,
the benchmark's ``--cpu-dry-run``): CI runs it to keep the script and the module working.

    python benchmarks/gpu_proof.py [--out PATH] [--cpu-dry-run]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import harness

TEST_MODULE = "tests/test_gpu_paths.py"
TESTS_LIMIT_S = 240
THROUGHPUT_LIMIT_S = 210


def machine_facts() -> dict[str, Any]:
    """What the proof ran on (no CUDA: says so)."""
    import torch

    facts: dict[str, Any] = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda,
                             "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        facts.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                     memory_gib=round(props.total_memory / 2**30, 1), device_count=torch.cuda.device_count(),
                     bf16_hardware=bool(torch.cuda.is_bf16_supported(including_emulation=False)))
        try:
            import pynvml

            pynvml.nvmlInit()
            facts["driver"] = pynvml.nvmlSystemGetDriverVersion()
            pynvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - a fact, not a requirement
            facts["driver"] = f"unknown ({type(exc).__name__})"
    return facts


def run_stage(argv: list[str], limit_s: float, env: dict[str, str]) -> dict[str, Any]:
    """Run one stage as a subprocess; its exit code, time and the tail of its output."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=harness.REPO, env=env, capture_output=True, text=True, timeout=limit_s)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    seconds = time.perf_counter() - t0
    print(out[-4000:], flush=True)
    return {"exit_code": code, "timed_out": code is None, "seconds": round(seconds, 1), "output_tail": out[-3000:]}


def test_results(junit: Path) -> list[dict[str, Any]]:
    """Each test case of a JUnit XML report: name, outcome, seconds and the message of a failure."""
    if not junit.is_file():
        return []
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                message = (found.get("message") or found.text or "")[:1500]
        cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                      "message": message})
    return cases


def main() -> None:
    p = harness.parser("gpu_proof", __doc__.splitlines()[0])
    p.add_argument("--cpu-dry-run", action="store_true", help="The same stages on the CPU at toy sizes (CI).")
    args = p.parse_args()
    started = time.perf_counter()
    import torch

    on_gpu = torch.cuda.is_available() and not args.cpu_dry_run
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "PYTHONUNBUFFERED": "1"}
    if args.cpu_dry_run:
        env["FTUI_GPU_DRY_RUN"] = "1"
    proof: dict[str, Any] = {"ran_on_gpu": on_gpu, "dry_run": args.cpu_dry_run, "machine": machine_facts()}
    if not on_gpu and not args.cpu_dry_run:
        note = "no CUDA device here: nothing proven (run it where a GPU is lent, or use --cpu-dry-run)"
        print(note)
        proof.update(passed=False, skipped=True, reason=note)
        harness.report("gpu_proof", "GPU proof", [{"measure": "proof", "value": None, "status": "skipped",
                                                  "note": note}], proof, args.out, quick=True)
        return

    with tempfile.TemporaryDirectory(prefix="ftui-gpu-proof-") as tmp:
        junit = Path(tmp) / "junit.xml"
        stage = run_stage([sys.executable, "-m", "pytest", TEST_MODULE, "-q", "-rA", "-p", "no:cacheprovider",
                           f"--junitxml={junit}", "-o", "junit_family=xunit1"], TESTS_LIMIT_S, env)
        cases = test_results(junit)
        proof["tests"] = {**stage, "cases": cases,
                          "counts": {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "skipped")}}

        bench_json = Path(tmp) / "gpu_throughput.json"
        bench = [sys.executable, str(harness.REPO / "benchmarks" / "gpu_throughput.py"), "--out", str(bench_json)]
        bench += ["--cpu-dry-run", "--models", "resnet18"] if args.cpu_dry_run else \
            ["--models", "resnet18,resnet50", "--compile-models", "resnet18"]
        stage = run_stage(bench, THROUGHPUT_LIMIT_S, env)
        results = json.loads(bench_json.read_text())["results"] if bench_json.is_file() else None
        proof["throughput"] = {**stage, "results": results}

    counts = proof["tests"]["counts"]
    tests_ok = proof["tests"]["exit_code"] == 0 and counts["failed"] == 0 and counts["passed"] > 0
    bench_ok = proof["throughput"]["exit_code"] == 0 and proof["throughput"]["results"] is not None
    proof.update(passed=tests_ok and bench_ok, seconds=round(time.perf_counter() - started, 1))
    rows: list[dict[str, Any]] = [
        {"measure": "GPU test module", "value": f"{counts['passed']} passed, {counts['failed']} failed, "
                                               f"{counts['skipped']} skipped",
         "status": "ok" if tests_ok else "FAIL", "note": f"{proof['tests']['seconds']} s"},
    ]
    for model, found in ((proof["throughput"]["results"] or {}).get("models") or {}).items():
        for key, got in found.items():
            if isinstance(got, dict):
                rows.append({"measure": f"{model} {key}: ftui / hand-written", "value": got["ratio"], "unit": "x",
                             "note": f"{got['ftui']['img_s']:,.0f} vs {got['plain']['img_s']:,.0f} img/s"})
    rows.append({"measure": "whole proof", "value": proof["seconds"], "unit": "s", "target": "< 480",
                 "status": harness.verdict(proof["seconds"], 480)})
    harness.report("gpu_proof", "GPU proof: tests and throughput", rows, proof, args.out, quick=args.cpu_dry_run)
    sys.exit(0 if proof["passed"] else 1)


if __name__ == "__main__":
    main()
