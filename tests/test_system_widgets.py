"""Pilot tests of the dashboard's system panel and the home screen's machine panel."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import Label, Sparkline, Static

from core.runs import JsonlTail, RunWriter
from core.training.callbacks.telemetry import TelemetryCallback
from tui.widgets.machine_panel import MachinePanel
from tui.widgets.system_panel import SystemPanel
from support.nvml_fakes import FakeGpu, FakeNvml

GIB = 1024**3
pytestmark = pytest.mark.asyncio


def _plain(renderable: Any, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


class PanelApp(App):
    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget
        self.findings_messages: list[list] = []

    def compose(self) -> ComposeResult:
        yield self.widget

    def on_system_panel_findings_changed(self, message: SystemPanel.FindingsChanged) -> None:
        self.findings_messages.append(message.findings)


def _gpu_record(t: float, util: float, used: float, temp: Any = 61) -> dict:
    return {
        "time": t, "cpu_percent": 25.0, "cpu_count": 16, "proc_cpu_percent": 180.0, "proc_rss": 3 * GIB,
        "mem_used": 12 * GIB, "mem_total": 64 * GIB, "workers": 4, "children": 4, "children_cpu_percent": 320.0,
        "gpus": [{
            "index": 0, "name": "NVIDIA H100 80GB HBM3", "util": util, "mem_used": used, "mem_total": 80 * GIB,
            "temp": temp, "power": 350.5, "power_limit": 700.0, "sm_clock": 1980, "torch_allocated": 30 * GIB,
            "torch_reserved": 34 * GIB, "torch_peak": 33 * GIB,
        }],
    }


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


async def test_system_panel_shows_a_recorded_gpu_run(tmp_path: Path) -> None:
    records = [_gpu_record(1000 + i, util=u, used=40 * GIB) for i, u in enumerate([10, 20, 15, 12])]
    records[-1]["gpus"][0]["temp"] = None  # the driver did not report it
    _write_jsonl(tmp_path / "system.jsonl", records)
    metrics = [{"step": i, "epoch": 0, "time": 1000 + i, "split": "train", "data_wait": 0.7} for i in range(3)]
    samples = JsonlTail(tmp_path / "system.jsonl").poll()

    panel = SystemPanel()
    async with PanelApp(panel).run_test(size=(120, 40)) as pilot:
        panel.update_samples(samples, metrics)
        await pilot.pause()
        now = panel.query_one("#system-now", Static).content.plain
        assert "GPU 0 NVIDIA H100 80GB HBM3" in now
        assert "util 12% · mem 40.0/80.0 GiB · – · 350 W/700 W · 1980 MHz" in now  # temp missing: a dash
        assert "torch allocated 30.0 · reserved 34.0 · peak 33.0 GiB" in now
        assert "workers 4" in now
        assert panel.query_one("#spark-gpu-util", Sparkline).data == [10.0, 20.0, 15.0, 12.0]
        assert panel.query_one("#spark-gpu-mem", Sparkline).data == [50.0] * 4
        assert panel.query_one("#spark-ram", Sparkline).data == [18.75] * 4
        assert str(panel.query_one("#value-gpu-mem", Label).content) == "50% 40.0/80.0 GiB"
        assert str(panel.query_one("#value-cpu", Label).content) == "25% of 16 cores"
        assert panel.query_one("#row-gpu-util").display is True
        # Waiting for data 70% of the time at 14% GPU util: the panel says so and names the settings.
        assert [f.kind for f in panel.findings] == ["input_bottleneck"]
        findings = panel.query_one("#system-findings", Static)
        assert findings.display is True
        text = findings.content.plain
        assert "input pipeline is the bottleneck" in text and "data.num_workers: 4 → 8" in text
        assert [[f.kind for f in fs] for fs in pilot.app.findings_messages] == [["input_bottleneck"]]
        panel.update_samples(samples, metrics)  # nothing new: no redraw, no message
        await pilot.pause()
        assert len(pilot.app.findings_messages) == 1


async def test_system_panel_shows_a_real_cpu_run(tmp_path: Path) -> None:
    import torch
    from types import SimpleNamespace

    from core.config import config_from_dict

    run = RunWriter.create(tmp_path, "cpu-run", flush_seconds=0.05)
    trainer = SimpleNamespace(run=run, device=torch.device("cpu"), cfg=config_from_dict({}), train_loader=None)
    callback = TelemetryCallback(interval=0.05)
    callback.on_fit_start(trainer)
    model, x = torch.nn.Linear(64, 64), torch.randn(256, 64)
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        model(x).sum().backward()
    callback.on_fit_end(trainer)
    run.close()
    samples = JsonlTail(run.path / "system.jsonl").poll()
    assert len(samples) >= 3

    panel = SystemPanel()
    async with PanelApp(panel).run_test(size=(120, 30)) as pilot:
        panel.update_samples(samples, [])
        await pilot.pause()
        now = panel.query_one("#system-now", Static).content.plain
        assert "no NVIDIA GPU recorded: host figures only" in now
        assert panel.has_class("-no-gpu")
        assert panel.query_one("#row-gpu-util").display is False
        assert len(panel.query_one("#spark-cpu", Sparkline).data) == len(samples)
        total_gib = psutil.virtual_memory().total / GIB
        assert f"/{total_gib:.1f} GiB" in str(panel.query_one("#value-ram", Label).content)
        assert panel.findings == [] and panel.query_one("#system-findings").display is False
        assert pilot.app.findings_messages == []


async def test_system_panel_fed_before_mount_and_empty() -> None:
    panel = SystemPanel()
    panel.update_samples([_gpu_record(5, util=99, used=79 * GIB)], [])  # not mounted yet
    async with PanelApp(panel).run_test() as pilot:
        await pilot.pause()
        assert "GPU 0" in panel.query_one("#system-now", Static).content.plain
        assert [f.kind for f in panel.findings] == ["gpu_memory_full"]
        panel.update_samples([], [])
        await pilot.pause()
        assert "waiting for the first telemetry sample" in panel.query_one("#system-now", Static).content.plain


async def _wait_snapshot(pilot, panel: MachinePanel) -> None:
    deadline = time.monotonic() + 10
    while panel.snapshot is None:
        assert time.monotonic() < deadline, "machine panel never sampled"
        await pilot.pause(0.02)


async def test_machine_panel_says_no_gpu_on_this_machine() -> None:
    panel = MachinePanel(interval=0.2)
    async with PanelApp(panel).run_test(size=(100, 20)) as pilot:
        await _wait_snapshot(pilot, panel)
        if panel.snapshot.gpus:  # pragma: no cover - a GPU box
            pytest.skip("this machine has an NVIDIA GPU")
        text = _plain(panel.content)
        assert "no NVIDIA GPU found (NVML could not start" in text
        assert f"of {psutil.cpu_count()} cores" in text and "RAM" in text
        first = panel.snapshot
        await pilot.pause(0.5)
        assert panel.snapshot is not first  # it keeps sampling


async def test_machine_panel_lists_gpus_free_memory_and_processes() -> None:
    me = os.getpid()
    my_name = psutil.Process(me).name()
    backend = FakeNvml([
        FakeGpu(name="NVIDIA A100", uuid="GPU-a", util=93, mem_used=70 * GIB, processes=[(me, 69 * GIB)]),
        FakeGpu(name="NVIDIA A100", uuid="GPU-b", util=0, mem_used=1 * GIB, temp=None),
    ])
    backend.nvmlSystemGetProcessName = lambda pid: f"/usr/bin/{my_name}".encode()
    panel = MachinePanel(interval=5.0, nvml_backend=backend)
    async with PanelApp(panel).run_test(size=(140, 20)) as pilot:
        await _wait_snapshot(pilot, panel)
        text = _plain(panel.content, width=140)
    busy, idle = panel.snapshot.gpus
    assert busy["free"] == 10 * GIB and idle["free"] == 79 * GIB
    assert busy["processes"] == [{"pid": me, "name": my_name, "used_memory": 69 * GIB,
                                  "user": psutil.Process(me).username()}]
    assert "93%" in text and "10.0/80.0 GiB" in text and "79.0/80.0 GiB" in text
    assert f"{my_name}[{me}] 69.0 GiB" in text
    assert "free" in text.splitlines()[2]  # the idle GPU reads as free
    assert "driver 999.99" in text
    assert backend.shutdowns == backend.inits  # NVML released on unmount
