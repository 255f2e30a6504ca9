"""The home screen's machine panel: every GPU on the box, how busy it is and who uses it, plus CPU/RAM.

It samples the machine itself in a worker thread every ``interval`` seconds (NVML and psutil, no
torch), so a user can pick a free GPU before starting a run. The thread never touches widgets: it
posts :class:`MachinePanel.Sampled` and the handler redraws.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import Static

from core.system.machine import MachineSnapshot, machine_snapshot
from core.system.nvml import Nvml
from core.system.units import MISSING, fmt_gib, fmt_pct, fmt_unit, fmt_used_total, ratio_pct


class MachinePanel(Static):
    """GPUs (utilisation, free memory, processes) and host CPU/RAM, refreshed every ``interval`` s.

    Args:
        interval: seconds between samples.
        nvml_backend: a pynvml-like object for tests; None uses the real ``pynvml``.
    """

    DEFAULT_CSS = """
    MachinePanel {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    @dataclass
    class Sampled(Message):
        """A new snapshot of the machine (posted from the sampling thread)."""

        snapshot: MachineSnapshot

    def __init__(
        self,
        *,
        interval: float = 2.0,
        nvml_backend: object | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(Text("sampling the machine…", style="dim"), id=id, classes=classes)
        self.interval = interval
        self.nvml_backend = nvml_backend
        self.snapshot: MachineSnapshot | None = None
        self._nvml: Nvml | None = None
        self._nvml_lock = threading.Lock()

    def on_mount(self) -> None:
        self.border_title = "machine"
        self.sample()
        self.set_interval(self.interval, self.sample)

    def on_unmount(self) -> None:
        with self._nvml_lock:
            if self._nvml is not None:
                self._nvml.close()
                self._nvml = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="machine-sample")
    def sample(self) -> None:
        """Take a snapshot off the event loop and post it."""
        with self._nvml_lock:
            if self._nvml is None or not self._nvml.available:
                # Retry each time while unavailable: a driver may have been loaded meanwhile.
                if self._nvml is not None:
                    self._nvml.close()
                self._nvml = Nvml(self.nvml_backend)
                self._nvml.start()
            snapshot = machine_snapshot(self._nvml)
        self.post_message(self.Sampled(snapshot))

    def on_machine_panel_sampled(self, message: MachinePanel.Sampled) -> None:
        self.snapshot = message.snapshot
        self.update(render_snapshot(message.snapshot, width=self.content_size.width))

    def on_resize(self) -> None:
        if self.snapshot is not None:
            self.update(render_snapshot(self.snapshot, width=self.content_size.width))


#: Below this many columns the CPU and RAM figures take a line each (never a unit alone on a line).
HOST_ONE_LINE = 44


def render_snapshot(snap: MachineSnapshot, *, width: int = 80) -> Group:
    """The panel's content for one snapshot, ``width`` columns wide: the host's figures first (on a small
    terminal the panel has a few lines, and they are what it is for), then the GPUs or why there are none."""
    cpu = Text.assemble(("CPU ", "bold"), f"{fmt_pct(snap.cpu_percent)} of {snap.cpu_count} cores")
    ram = Text.assemble(("RAM ", "bold"), f"{fmt_pct(ratio_pct(snap.mem_used, snap.mem_total))} "
                                          f"{fmt_used_total(snap.mem_used, snap.mem_total)}")
    host: list[Text] = [Text.assemble(cpu, "   ", ram)] if width >= HOST_ONE_LINE else [cpu, ram]
    if not snap.gpus:
        reason = Text("no NVIDIA GPU found", style="yellow")
        if snap.nvml_reason:
            reason.append(f" ({snap.nvml_reason})", style="dim")
        return Group(*host, reason)
    table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
    table.add_column("GPU", justify="right", no_wrap=True)
    table.add_column("name", overflow="ellipsis", no_wrap=True)
    table.add_column("util", justify="right", no_wrap=True)
    table.add_column("free", justify="right", no_wrap=True)
    table.add_column("temp", justify="right", no_wrap=True)
    table.add_column("processes", overflow="fold")
    for gpu in snap.gpus:
        procs = gpu.get("processes") or []
        free = Text(f"{fmt_gib(gpu.get('free'))}/{fmt_gib(gpu.get('mem_total'))} GiB")
        idle = not procs and (gpu.get("util") or 0) < 5
        table.add_row(
            str(gpu.get("index", "?")),
            gpu.get("name") or MISSING,
            fmt_pct(gpu.get("util")),
            free,
            fmt_unit(gpu.get("temp"), "°C"),
            _processes_text(procs) if procs else Text("free" if idle else "—", style="green" if idle else "dim"),
        )
    driver = Text(f"driver {snap.driver_version}", style="dim") if snap.driver_version else Text("")
    return Group(table, *host, driver)


def _processes_text(procs: list[dict]) -> Text:
    text = Text()
    for i, proc in enumerate(procs):
        if i:
            text.append(", ")
        who = f"{proc.get('user')}:" if proc.get("user") else ""
        text.append(f"{who}{proc.get('name') or '?'}[{proc['pid']}]")
        if proc.get("used_memory") is not None:
            text.append(f" {fmt_gib(proc['used_memory'])} GiB", style="dim")
    return text
