"""Headless progress as a person sees it: Rich bars that stay whole on an 80-column terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from core.training.callbacks.progress import ProgressCallback
from core.training.trainer import Trainer
from support.training import tiny_cfg


def test_rich_progress_keeps_bars_and_counts_at_80_columns(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None, highlight=False)
    trainer = Trainer(tiny_cfg(tmp_path, trainer={"epochs": 1}), record=False, default_callbacks=False,
                      callbacks=[ProgressCallback("rich", console=console)])
    trainer.fit()
    text = out.getvalue()
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("epoch 1/")]
    bar_lines = [line for line in lines if "━" in line]
    assert bar_lines, text
    last = bar_lines[-1]
    assert "6/6" in last and "eta" in last  # the batch count and times are never squeezed out
    assert all(len(line) <= 80 for line in lines)
    assert "epoch 1/1: train loss" in text  # the epoch summary line
