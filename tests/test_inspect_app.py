"""The Textual inspector, driven with Pilot: summary, a selected tensor's statistics, plots, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from textual.app import App
from textual.widgets import Static, TabbedContent
from textual_plotext import PlotextPlot
from torch import nn

from core.inspect import tensor_stats
from tui.inspect_app import InspectApp
from tui.screens.inspect_screen import InspectScreen
from tui.widgets.inspect_panel import InspectPanel
from tui.widgets.inspect_render import fmt_num
from tui.widgets.inspect_stats import TensorStatsView
from tui.widgets.inspect_tree import LayerTree
from support.app import text_of, wait_for

pytestmark = pytest.mark.asyncio






def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model(torch.randn(4, 6)).sum().backward()
    opt.step()
    path = tmp_path / "best.pt"
    torch.save({
        "format": 1, "ftui_version": "0.1.0", "model": model.state_dict(), "optimizer": opt.state_dict(),
        "epoch": 2, "step": 20, "config": {"model": {"name": "mlp"}, "optim": {"name": "sgd"}},
        "data": {"class_names": ["low", "mid", "high"], "normalization": None, "input_shape": [6], "task": "tabular"},
        "finetune": {"frozen": ["0"]},
        "metrics": {"history": {"train/loss": [1.0, 0.8], "val/loss": [1.1, 0.9], "val/acc": [0.5, 0.7]},
                    "best": {"metric": "val/acc", "value": 0.7}},
    }, path)
    return path


async def test_inspector_summary_and_selected_tensor_stats(checkpoint: Path) -> None:
    app = InspectApp(checkpoint)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_for(pilot, lambda: screen.summary is not None)
        summary = text_of(screen.query_one("#summary-panel", InspectPanel).query_one(Static))
        for needle in ("ftui", "mlp", "2 / 20", "val/acc", "frozen", "0"):
            assert needle in summary, needle

        await pilot.press("l")
        assert screen.query_one(TabbedContent).active == "layers"
        tree = screen.query_one(LayerTree)
        leaf = next(n for n in walk(tree.root) if n.data == {"tensor": "2.weight"})
        tree.focus()
        tree.move_cursor(leaf)
        await pilot.press("enter")
        view = screen.query_one(TensorStatsView)
        await wait_for(pilot, lambda: "mean" in text_of(view))
        shown = text_of(view)
        expected = tensor_stats(torch.load(checkpoint, weights_only=True)["model"]["2.weight"])
        assert "2.weight" in shown and "3×5" in shown
        for value in (expected.mean, expected.std, expected.min, expected.max):
            assert fmt_num(value) in shown

        await pilot.press("m")
        plots = screen.query(PlotextPlot)
        assert {p.classes for p in plots} == {frozenset({"metric-loss"}), frozenset({"metric-metrics"})}
        await pilot.press("o")
        assert "sgd" in text_of(screen.query_one("#optimizer-panel", InspectPanel).query_one(Static))
        await pilot.press("d")
        assert "low, mid, high" in text_of(screen.query_one("#data-panel", InspectPanel).query_one(Static))
        await pilot.press("q")
    assert app.return_code == 0


async def test_inspector_as_pushed_screen_shows_errors_and_pops(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")

    class Host(App):
        pass

    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(InspectScreen(bad))
        await pilot.pause()
        screen = app.screen
        panel = screen.query_one("#summary-panel", InspectPanel).query_one(Static)
        await wait_for(pilot, lambda: "truncated" in text_of(panel))
        assert str(bad) in text_of(panel)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, InspectScreen)
