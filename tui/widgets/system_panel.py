"""The dashboard's system panel: current GPU and host figures, sparklines of recent history, diagnostics.

Fed by the dashboard with everything read so far from ``system.jsonl`` and ``metrics.jsonl``
(:meth:`SystemPanel.update_samples`); it reads no files and starts no threads itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Sparkline, Static

from core.system.diagnostics import Finding, diagnose
from core.system.units import MISSING, fmt_gib, fmt_pct, fmt_unit, fmt_used_total, ratio_pct

# (id, label) of the history rows; GPU rows hide on runs without GPU figures.
SERIES = (("gpu-util", "GPU util"), ("gpu-mem", "GPU mem"), ("cpu", "CPU"), ("ram", "RAM"))


class SystemPanel(Vertical):
    """Current figures, four sparklines (GPU util, GPU memory, CPU, RAM) and findings."""

    DEFAULT_CSS = """
    SystemPanel {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    SystemPanel #system-now {
        height: auto;
    }
    SystemPanel .system-row {
        height: 1;
    }
    SystemPanel .system-row Label.system-name {
        width: 9;
        color: $text-muted;
    }
    SystemPanel .system-row Sparkline {
        width: 1fr;
        margin: 0 1;
    }
    SystemPanel .system-row Label.system-value {
        width: 24;
    }
    SystemPanel.-no-gpu #row-gpu-util, SystemPanel.-no-gpu #row-gpu-mem {
        display: none;
    }
    SystemPanel #system-findings {
        height: auto;
        color: $warning;
        display: none;
    }
    SystemPanel #system-findings.-shown {
        display: block;
    }
    """

    history = 120  # samples kept in the sparklines (two minutes at 1 Hz)

    @dataclass
    class FindingsChanged(Message):
        """The diagnostics changed (e.g. for the dashboard's alert banner); ``findings`` may be empty."""

        findings: list[Finding]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.findings: list[Finding] = []
        self.series: dict[str, list[float]] = {key: [] for key, _ in SERIES}
        self._seen: tuple[int, float | None, int] | None = None
        self._pending: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._ready = False  # children composed and mounted

    def compose(self) -> ComposeResult:
        yield Static(Text("waiting for the first telemetry sample…"), id="system-now")
        for key, label in SERIES:
            with Horizontal(classes="system-row", id=f"row-{key}"):
                yield Label(label, classes="system-name")
                yield Sparkline([], id=f"spark-{key}")
                yield Label(MISSING, classes="system-value", id=f"value-{key}")
        yield Static(id="system-findings")

    def on_mount(self) -> None:
        self.border_title = "system"
        self._ready = True
        if self._pending is not None:
            self.update_samples(*self._pending)

    def update_samples(self, samples: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> None:
        """Show the latest of ``samples`` (system.jsonl records) and diagnose with ``metrics``."""
        if not self._ready:  # fed before mounting: show it once the children exist
            self._pending = (samples, metrics)
            return
        self._pending = None
        key = (len(samples), samples[-1].get("time") if samples else None, len(metrics))
        if key == self._seen:  # the dashboard polls often; redraw only on news
            return
        self._seen = key
        recent = samples[-self.history :]
        self.series = _series(recent)
        latest = recent[-1] if recent else None
        has_gpu = bool(latest and latest.get("gpus"))
        self.set_class(latest is not None and not has_gpu, "-no-gpu")
        for name, values in self.series.items():
            self.query_one(f"#spark-{name}", Sparkline).data = values
        if latest is not None:
            self._show_values(latest)
        self.query_one("#system-now", Static).update(_now_text(latest))
        # Diagnostics look at the last minute only; tails keep each redraw cheap on hours-long runs.
        findings = diagnose(samples[-600:], metrics[-2000:])
        changed = [f.message for f in findings] != [f.message for f in self.findings]
        self.findings = findings
        if changed:
            self.post_message(self.FindingsChanged(list(findings)))
        box = self.query_one("#system-findings", Static)
        box.set_class(bool(self.findings), "-shown")
        box.update(_findings_text(self.findings))

    def _show_values(self, rec: dict[str, Any]) -> None:
        gpus = rec.get("gpus") or []
        used, total = _gpu_memory(gpus)
        util = _mean(g.get("util") for g in gpus)
        values = {
            "gpu-util": fmt_pct(util),
            "gpu-mem": f"{fmt_pct(ratio_pct(used, total))} {fmt_used_total(used, total)}",
            "cpu": f"{fmt_pct(rec.get('cpu_percent'))} of {rec.get('cpu_count') or '?'} cores",
            "ram": f"{fmt_pct(ratio_pct(rec.get('mem_used'), rec.get('mem_total')))} "
            f"{fmt_used_total(rec.get('mem_used'), rec.get('mem_total'))}",
        }
        for name, text in values.items():
            self.query_one(f"#value-{name}", Label).update(text)


def _series(samples: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-sample values of each history row; samples lacking a figure are left out, not zeroed."""
    out: dict[str, list[float]] = {key: [] for key, _ in SERIES}
    for rec in samples:
        gpus = rec.get("gpus") or []
        util = _mean(g.get("util") for g in gpus)
        mem = ratio_pct(*_gpu_memory(gpus))
        cpu = rec.get("cpu_percent")
        ram = ratio_pct(rec.get("mem_used"), rec.get("mem_total"))
        for key, value in (("gpu-util", util), ("gpu-mem", mem), ("cpu", cpu), ("ram", ram)):
            if isinstance(value, (int, float)):
                out[key].append(float(value))
    return out


def _now_text(rec: dict[str, Any] | None) -> Text:
    if rec is None:
        return Text("waiting for the first telemetry sample…", style="dim")
    text = Text()
    gpus = rec.get("gpus") or []
    for gpu in gpus:
        text.append(f"GPU {gpu.get('index', '?')} ", style="bold")
        text.append(f"{gpu.get('name') or ''}\n", style="dim")
        text.append(
            f"  util {fmt_pct(gpu.get('util'))} · mem {fmt_used_total(gpu.get('mem_used'), gpu.get('mem_total'))}"
            f" · {fmt_unit(gpu.get('temp'), '°C')} · {fmt_unit(gpu.get('power'), ' W')}"
            f"/{fmt_unit(gpu.get('power_limit'), ' W')} · {fmt_unit(gpu.get('sm_clock'), ' MHz')}\n"
        )
        if gpu.get("torch_allocated") is not None or gpu.get("torch_reserved") is not None:
            text.append(
                f"  torch allocated {fmt_gib(gpu.get('torch_allocated'))} · reserved "
                f"{fmt_gib(gpu.get('torch_reserved'))} · peak {fmt_gib(gpu.get('torch_peak'))} GiB\n"
            )
    if not gpus:
        text.append("no NVIDIA GPU recorded: host figures only\n", style="dim")
    workers = rec.get("workers")
    text.append(
        f"process CPU {fmt_pct(rec.get('proc_cpu_percent'))} · RSS {fmt_gib(rec.get('proc_rss'))} GiB"
        f" · workers {workers if workers is not None else MISSING}"
    )
    if rec.get("children_cpu_percent") is not None and rec.get("children"):
        text.append(f" (using {fmt_pct(rec['children_cpu_percent'])} CPU)")
    return text


def _findings_text(findings: list[Finding]) -> Text:
    text = Text()
    for i, finding in enumerate(findings):
        if i:
            text.append("\n")
        text.append(f"⚠ {finding.message}", style="bold")
        for suggestion in finding.suggestions:
            text.append(f"\n   {suggestion.key}", style="bold")
            text.append(f": {suggestion.advice}")
    return text


def _gpu_memory(gpus: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Used and total memory summed over the GPUs that report both."""
    pairs = [
        (g["mem_used"], g["mem_total"])
        for g in gpus
        if isinstance(g.get("mem_used"), (int, float)) and isinstance(g.get("mem_total"), (int, float))
    ]
    if not pairs:
        return None, None
    return float(sum(u for u, _ in pairs)), float(sum(t for _, t in pairs))


def _mean(values: Any) -> float | None:
    nums = [v for v in values if isinstance(v, (int, float))]
    return sum(nums) / len(nums) if nums else None
