"""``ftui model show`` / ``ftui model graph``: Rich tree, Mermaid flowchart and CLI errors."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console
from typer.testing import CliRunner

from core.config import FinetuneConfig, ModelConfig, OptimConfig
from core.finetune import FineTuner
from core.models import build_model, model_tree
from tui.cli import app
from tui.commands.model_cmd import mermaid, render_tree

runner = CliRunner()

SMALL = """\
data:
  source: shapes
  shapes: {classes: [circle, square, triangle], image_size: 16, train_size: 30, val_size: 10, test_size: 0}
model: {name: %s, channels: [4, 8]}
finetune: {freeze: [stage1], head_lr: 0.01}
"""


def write(tmp_path: Path, model: str = "simple_cnn") -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(SMALL % model, encoding="utf-8")
    return path


def resnet_tree() -> dict:
    torch.manual_seed(0)
    built = build_model(ModelConfig(name="resnet18"), 3, (3, 32, 32))
    tuner = FineTuner(built.model, FinetuneConfig(freeze=["backbone"]), OptimConfig(lr=0.001), built.head_path)
    tuner.setup()
    return model_tree(built.model, (3, 32, 32), built.head_path, lrs=tuner.param_lrs(), name="resnet18")


def render(renderable, width: int = 120) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=True, color_system=None).print(renderable)
    return buf.getvalue()


def test_rich_tree_of_resnet18_at_depth_2_and_1() -> None:
    tree = resnet_tree()
    text = render(render_tree(tree, depth=2, notes=["head fc replaced"]))
    lines = text.splitlines()
    assert lines[0].startswith("resnet18") and "input 3×32×32" in lines[0]
    layer4 = next(line for line in lines if "layer4 (Sequential)" in line)
    assert "512×1×1" in layer4 and "8,393,728" in layer4 and "frozen" in layer4
    assert any("└─ 1 (BasicBlock)" in line for line in lines)
    fc = next(line for line in lines if "fc (Linear)" in line)
    assert "◀ head" in fc and "1,539" in fc and "0.001" in fc
    assert "Total params: 11,178,051" in text and "Trainable params: 1,539" in text
    assert "Frozen params: 11,176,512" in text and "· head fc replaced" in text
    shallow = render(render_tree(tree, depth=1))
    assert "BasicBlock" not in shallow and "layer4 (Sequential)" in shallow


def test_mermaid_top_levels_in_forward_order() -> None:
    tree = resnet_tree()
    text = mermaid(tree, depth=1)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD" and 'input(["input 3×32×32"])' in lines[1]
    assert lines[2].startswith('    n0["conv1<br/>Conv2d → 64×16×16')
    assert "    input --> n0" in lines and "    n8 --> n9" in lines
    assert '    n9["fc<br/>Linear → 3 · 1,539 params"]' in lines
    assert "    class n9 head" in lines and "    class n0,n1,n4,n5,n6,n7 frozen" in lines
    deep = mermaid(tree, depth=2)
    assert deep.count("subgraph") == 4 and deep.count("    end") == 4
    assert 'subgraph g_n4 ["layer1 · Sequential"]' in deep


def test_cli_model_show_and_graph(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = runner.invoke(app, ["model", "show", str(path), "--depth", "1"])
    assert result.exit_code == 0, result.output
    assert "stage1 (Sequential)" in result.output and "frozen" in result.output
    assert "head (Linear)" in result.output and "◀ head" in result.output and "Total params:" in result.output
    result = runner.invoke(app, ["model", "graph", str(path), "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD") and "class n3 head" in result.output


def test_cli_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["model", "show", str(write(tmp_path, "resnet19"))])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "resnet18" in result.output and "model.name" in result.output
    result = runner.invoke(app, ["model", "graph", str(write(tmp_path)), "--format", "dot"])
    assert result.exit_code == 2 and "--format" in result.output


def test_model_show_needs_no_data_on_disk(tmp_path: Path, monkeypatch) -> None:
    """The README's cifar10 sample without CIFAR-10 (or its ImageNet weights) on this machine: the
    model's shapes come from the config, and no data is read."""
    import core.data

    def no_data(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("model show built the data")

    monkeypatch.setattr(core.data, "build_data", no_data)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))  # no pretrained weights here either
    sample = Path(__file__).resolve().parent.parent / "sample_configs" / "cifar10_resnet18.yaml"
    result = runner.invoke(app, ["model", "show", str(sample), "--set", f"data.root={tmp_path / 'no-cifar'}"],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "resnet18 · input 3×64×64" in flat and "512×2×2" in flat  # data.image_size 64: the real shapes
    assert "Head: fc (DropoutLinear, output 10)" in flat  # cifar10's ten classes
    assert "shown without its pretrained weights: model.weights: resnet18 IMAGENET1K_V1" in flat
