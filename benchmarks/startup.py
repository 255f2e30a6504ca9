"""Benchmark 5 — start-up: ``ftui --help``, ``ftui watch RUN`` to the first frame, ``ftui run`` to its first line.

* ``ftui --help`` runs as a subprocess to its exit (target < 0.5 s); ``python -c pass`` is the floor.
* ``ftui watch RUN`` runs in a pseudo-terminal (120 x 40), exactly as a person starts it. First frame:
  the dashboard's layout is on the terminal (the titles of the loss and accuracy plots) (target < 1.5 s).
  Run on screen: the header with the run's name, which appears once the reader has delivered
  ``run.json`` and the metrics. The run is a copy of the recorded test run
  (``tests/fixtures/recorded_run``); the app is then quit with ``q``.

* ``ftui run sample_configs/quickstart.yaml`` as a person starts it (output to a pipe, so plain lines;
  ``--set logging.every_n_steps=1`` so the first optimizer step prints a line, and ``run.root`` in a
  temporary directory): time to its first line (the run's name and where it goes; target < 0.5 s) and
  to the line of the first optimizer step, beside ``python -c "import torch, torchvision"``, the floor
  of any process that trains with them. The run is killed once its first step is printed.

* ``ftui model show sample_configs/cifar10_resnet18.yaml`` with neither CIFAR-10 nor the ImageNet
  weights on the machine (``data.root`` and ``TORCH_HOME`` point at empty places): to its exit (target
  < 3 s); it builds the model from what the config says of the data.

Repetitions alternate the commands; figures are medians. Beside wall time, the CPU time the process
used (from ``wait4``, or ``/proc/PID/stat`` at the first frame) tells what an idle core would take on a
machine that other work keeps busy.

    python benchmarks/startup.py [--reps 7] [--quick]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

TARGET_HELP_S = 0.5
TARGET_FIRST_LINE_S = 0.5
TARGET_MODEL_SHOW_S = 3.0
TARGET_WATCH_S = 1.5
FIXTURE = harness.REPO / "tests" / "fixtures" / "recorded_run"


def run_to_exit(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of a command run to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=harness.REPO,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def run_first_lines(ftui: str, root: Path, timeout: float = 120.0) -> tuple[float, float, float, float]:
    """Seconds from starting ``ftui run`` to its first line and to its first optimizer step's line, and
    the CPU seconds it had used at each (``/proc``)."""
    cmd = [ftui, "run", "sample_configs/quickstart.yaml", "--set", f"run.root={root}",
           "--set", "logging.every_n_steps=1", "--set", "logging.progress=plain"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=harness.REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    first = step = cpu = first_cpu = float("nan")
    seen = b""
    try:
        assert proc.stdout is not None
        while time.perf_counter() - t0 < timeout:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            now = time.perf_counter() - t0
            if first != first:
                first, first_cpu = now, harness.cpu_seconds(proc.pid)
            if b" step 1/" in line:
                step, cpu = now, harness.cpu_seconds(proc.pid)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if step != step:
        raise SystemExit(f"ftui run printed no first step within {timeout:.0f}s; its output:\n{seen.decode(errors='replace')[-1500:]}")
    return first, first_cpu, step, cpu


def watch_first_frame(ftui: str, root: Path, name: str, timeout: float = 30.0) -> tuple[float, float, float]:
    """Seconds to the header with the run name, to the plot titles, and CPU seconds used by the latter."""
    t_header = t_plot = cpu_plot = float("nan")
    with harness.PtyApp([ftui, "watch", name, "--root", str(root)], cwd=harness.REPO) as app:
        for seen, now in app.output(timeout):
            if t_header != t_header and name.encode() in seen:
                t_header = now
            if t_plot != t_plot and b"loss" in seen and b"accuracy" in seen:
                t_plot, cpu_plot = now, app.cpu_seconds()
            if t_header == t_header and t_plot == t_plot:
                break
        if t_header != t_header:
            raise SystemExit(f"ftui watch never showed the run name within {timeout:.0f}s; last output:\n{app.tail()}")
    return t_header, t_plot, cpu_plot


def main() -> None:
    p = harness.parser("startup", __doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    if args.quick:
        args.reps = 1
    ftui = str(Path(sys.executable).with_name("ftui"))
    tmp = Path(tempfile.mkdtemp(prefix="ftui-bench-startup-"))
    times: dict[str, list[float]] = {"python_pass": [], "help": [], "watch_header": [], "watch_plots": [],
                                     "help_cpu": [], "watch_plots_cpu": [], "python_pass_cpu": [],
                                     "import_torch": [], "import_torch_cpu": [], "run_first_line": [], "run_first_line_cpu": [],
                                     "run_first_step": [], "run_first_step_cpu": [],
                                     "model_show": [], "model_show_cpu": []}
    try:
        shutil.copytree(FIXTURE, tmp / "recorded_run")
        run_to_exit([ftui, "--help"])  # warm the file cache once; every figure below is a warm start
        for rep in range(args.reps):
            wall, cpu = run_to_exit([sys.executable, "-c", "pass"])
            times["python_pass"].append(wall)
            times["python_pass_cpu"].append(cpu)
            wall, cpu = run_to_exit([ftui, "--help"])
            times["help"].append(wall)
            times["help_cpu"].append(cpu)
            header, plots, cpu = watch_first_frame(ftui, tmp, "recorded_run")
            times["watch_header"].append(header)
            times["watch_plots"].append(plots)
            times["watch_plots_cpu"].append(cpu)
            wall, cpu = run_to_exit([sys.executable, "-c", "import torch, torchvision"])
            times["import_torch"].append(wall)
            times["import_torch_cpu"].append(cpu)
            line, line_cpu, step, cpu = run_first_lines(ftui, tmp / f"runs-{rep}")
            times["run_first_line"].append(line)
            times["run_first_line_cpu"].append(line_cpu)
            times["run_first_step"].append(step)
            times["run_first_step_cpu"].append(cpu)
            wall, cpu = run_to_exit([ftui, "model", "show", "sample_configs/cifar10_resnet18.yaml",
                                     "--set", f"data.root={tmp / 'no-cifar'}"], env={"TORCH_HOME": str(tmp / "no-hub")})
            times["model_show"].append(wall)
            times["model_show_cpu"].append(cpu)
            print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: harness.summary(v) for k, v in times.items()}
    def row(measure: str, key: str, target: float, note: str) -> dict:
        value = med[key]["median"]
        return {"measure": measure, "value": value, "unit": "s", "target": f"< {target:g}",
                "status": harness.verdict(value, target), "note": note}

    rows = [
        row("ftui --help", "help", TARGET_HELP_S,
            f"{med['help']['median'] / med['python_pass']['median']:.1f}x python -c pass"),
        row("ftui watch: first frame", "watch_plots", TARGET_WATCH_S,
            "120x40 pty: loss and accuracy plot titles drawn"),
        row("ftui watch: run on screen", "watch_header", TARGET_WATCH_S,
            "header with the run name (run.json and metrics read)"),
        row("ftui --help: CPU time", "help_cpu", TARGET_HELP_S,
            "user + system of the process: what an idle core would take"),
        row("ftui watch: CPU time to first frame", "watch_plots_cpu", TARGET_WATCH_S,
            "user + system of the app process until the first frame"),
        {"measure": "python -c pass", "value": med["python_pass"]["median"], "unit": "s", "note": "interpreter floor"},
        row("ftui run: time to first line", "run_first_line", TARGET_FIRST_LINE_S,
            "quickstart: its name and run directory, before torch is imported"),
        row("ftui run: CPU time to first line", "run_first_line_cpu", TARGET_FIRST_LINE_S,
            "user + system of the process: what an idle core would take"),
        {"measure": "ftui run: time to first optimizer step", "value": med["run_first_step"]["median"], "unit": "s",
         "note": f"{med['run_first_step']['median'] / med['import_torch']['median']:.1f}x the torch + torchvision import"},
        {"measure": "ftui run: CPU time to first step", "value": med["run_first_step_cpu"]["median"], "unit": "s",
         "note": "user + system of the run process (its loader worker not counted)"},
        row("ftui model show cifar10_resnet18", "model_show", TARGET_MODEL_SHOW_S,
            f"no data, no weights on disk; CPU {med['model_show_cpu']['median']:.2f} s"),
        {"measure": 'python -c "import torch, torchvision"', "value": med["import_torch"]["median"], "unit": "s",
         "note": f"the floor of a process that trains (CPU {med['import_torch_cpu']['median']:.2f} s)"},
    ]
    results = {"config": {"reps": args.reps, "terminal": [120, 40]}, "seconds": med, "raw": times}
    harness.report("startup", "Start-up times", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
