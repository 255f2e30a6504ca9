"""ftui compress and ftui export --format onnx: pruning that shrinks tensors, int8 in ONNX Runtime,
verified ONNX files, and checkpoints that stay ftui checkpoints (eval, inspect, diff)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from core.compress.pipeline import CompressOptions, compress
from core.errors import CompressionError
from core.training.evaluate import evaluate_checkpoint
from core.training.rebuild import rebuild
from core.training.trainer import Trainer
from support.training import tiny_cfg
from tui.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
# 16 channels in the first stage: --prune 0.97 would leave int(16 x 0.03) = 0 of them
DATA = {"shapes": {"image_size": 16, "train_size": 192, "val_size": 48, "test_size": 64,
                   "classes": ["circle", "square", "triangle"], "difficulty": 0.2}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a tiny simple_cnn trained 2 epochs (BatchNorm, so pruning has coupled layers)."""
    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(root, "tiny", data=DATA, model={"channels": [16, 32], "dropout": 0.0, "batch_norm": True},
                   trainer={"checkpoint": {"monitor": "val/acc", "mode": "max"}})
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer.run.path / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def compressed(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One full compress: 50 % structured pruning and int8, every float variant exported to ONNX."""
    out = tmp_path_factory.mktemp("compressed") / "out"
    result = runner.invoke(app, ["compress", str(trained), "--prune", "0.5", "--quantize", "int8", "--out", str(out),
                                 "--threads", "1", "--repeats", "3", "--calibration-samples", "64"])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "tradeoff.json").read_text())
    return {"out": out, "table": table, "rows": {r["name"]: r for r in table["variants"]}, "output": result.output}


def _load_safe(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_structured_pruning_shrinks_tensors_and_eval_reproduces_the_table(trained: Path, compressed: dict) -> None:
    original, pruned = _load_safe(trained), _load_safe(compressed["out"] / "pruned50.pt")
    # the tensors really shrink: output channels of the first conv, and the input of the next stage
    assert original["model"]["stage1.0.weight"].shape[0] == 16
    assert pruned["model"]["stage1.0.weight"].shape[0] == 8
    assert pruned["model"]["stage2.0.weight"].shape[1] == 8
    assert pruned["model"]["head.weight"].shape == (3, 16)  # the head keeps its classes
    rows = compressed["rows"]
    assert rows["pruned50"]["params"] < rows["original"]["params"] / 3
    assert rows["pruned50"]["flops"] < rows["original"]["flops"] / 3
    # ftui eval of the compressed checkpoint prints the table's accuracy, and reproduces it exactly
    result = runner.invoke(app, ["eval", str(compressed["out"] / "pruned50.pt")])
    assert result.exit_code == 0, result.output
    printed = float(re.search(r"accuracy\s*│\s*([0-9.]+)", result.output).group(1))
    assert printed == pytest.approx(rows["pruned50"]["accuracy"], abs=5e-5)
    assert evaluate_checkpoint(compressed["out"] / "pruned50.pt").metrics["acc"] == rows["pruned50"]["accuracy"]
    assert evaluate_checkpoint(trained).metrics["acc"] == rows["original"]["accuracy"]


def test_int8_variant_runs_in_onnx_runtime_and_eval_reproduces_the_table(compressed: dict) -> None:
    import onnxruntime as ort

    out, rows = compressed["out"], compressed["rows"]
    ckpt = _load_safe(out / "int8.pt")  # weights_only: the int8 model is a uint8 tensor, not a pickled object
    assert ckpt["compression"]["steps"][-1]["kind"] == "quantize"
    assert ckpt["onnx"].numpy().tobytes() == (out / "int8.onnx").read_bytes()
    session = ort.InferenceSession(str(out / "int8.onnx"), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in __import__("onnx").load(str(out / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.zeros((5, 3, 16, 16), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (5, 3)  # dynamic batch
    for name in ("int8", "pruned50-int8"):
        assert rows[name]["dtype"] == "int8"
        assert rows[name]["size_bytes"] < rows["original"]["size_bytes"]
        assert evaluate_checkpoint(out / f"{name}.pt").metrics["acc"] == rows[name]["accuracy"]
    assert abs(rows["int8"]["accuracy_change"]) <= 0.05
    assert rows["int8"]["latency_ms"]["onnxruntime"]["1"] > 0 and rows["int8"]["latency_ms"]["torch"] is None


def test_trade_off_table_printed_saved_and_complete(compressed: dict) -> None:
    table, output = compressed["table"], compressed["output"]
    assert [r["name"] for r in table["variants"]] == ["original", "pruned50", "int8", "pruned50-int8"]
    for row in table["variants"]:
        for key in ("params", "size_bytes", "sparsity", "accuracy", "accuracy_change", "latency_ms", "flops"):
            assert row[key] is not None, (row["name"], key)
        assert set(row["latency_ms"]["onnxruntime"]) == {"1", "64"}
        assert row["cpu_ms"]["onnxruntime"]["1"] > 0
    assert table["threads"] == 1 and table["machine"]["threads"] == 1
    for name in ("original", "pruned50", "int8", "pruned50-int8"):
        assert name in output
    # the command it suggests runs as printed
    suggested = re.search(r"next:\s+(ftui eval \S+)", output).group(1)
    assert runner.invoke(app, suggested.split()[1:]).exit_code == 0


def test_diff_names_the_removed_channels(trained: Path, compressed: dict) -> None:
    result = runner.invoke(app, ["diff", str(trained), str(compressed["out"] / "pruned50.pt"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    channels = {(c["module"], c["dim"]): c for c in report["compression"]["channels"]}
    first = channels[("stage1.0", "out")]
    assert (first["before"], first["after"], len(first["removed"])) == (16, 8, 8)
    # the removed indices are the rows missing from the pruned tensor
    a, b = _load_safe(trained)["model"]["stage1.0.weight"], _load_safe(compressed["out"] / "pruned50.pt")["model"]["stage1.0.weight"]
    kept = [i for i in range(16) if i not in first["removed"]]
    assert torch.equal(a[kept], b)
    plain = runner.invoke(app, ["diff", str(trained), str(compressed["out"] / "pruned50.pt")])
    assert "Channels removed" in plain.output and "stage1.0" in plain.output


def test_inspect_reads_a_compressed_checkpoint_without_torch(compressed: dict) -> None:
    code = (
        "import sys, json\n"
        "from core.inspect import load_checkpoint, summarize\n"
        f"s = summarize(load_checkpoint({str(compressed['out'] / 'pruned50-int8.pt')!r}))\n"
        "assert 'torch' not in sys.modules\n"
        "print(json.dumps(s['compression']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=60)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["variant"] == "pruned50-int8" and info["int8_model_bytes"] > 0
    assert any("structured pruning 50%" in s for s in info["steps"]) and any("int8 static" in s for s in info["steps"])


def test_onnx_export_parity_with_onnx_runtime(trained: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    target = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(trained), "--format", "onnx", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert "verified in ONNX Runtime" in result.output
    with rebuild(trained) as rebuilt:
        test = rebuilt.trainer.data.test
        batch = torch.stack([test[i][0] for i in range(len(test))])
        with torch.no_grad():
            expected = rebuilt.trainer.model.eval()(batch).numpy()
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    assert np.abs(actual - expected).max() <= 1e-4
    one = session.run(None, {session.get_inputs()[0].name: batch[:1].numpy()})[0]  # the batch is dynamic
    assert np.abs(one - expected[:1]).max() <= 1e-4


def test_onnx_export_of_a_torchvision_model(tmp_path: Path) -> None:
    import torchvision

    from core.compress.onnx_export import export_onnx

    model = torchvision.models.resnet18(num_classes=4).eval()
    batch = torch.randn(3, 3, 32, 32)
    report = export_onnx(model, batch[:2], tmp_path / "r18.onnx", verify_batch=batch)
    assert report.max_abs_diff <= 1e-4 and report.path.is_file()


def test_export_that_diverges_names_the_layer(tmp_path: Path) -> None:
    from onnxscript import opset18 as op

    from core.compress.onnx_export import export_onnx

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 2)).eval()
    x = torch.randn(4, 3, 16, 16)

    def wrong_relu(value: Any) -> Any:  # a translation that is not ReLU
        return op.Sigmoid(value)

    with pytest.raises(CompressionError, match=r"diverging at layer 1 \(ReLU\)") as info:
        export_onnx(model, x[:2], tmp_path / "bad.onnx", verify_batch=x, translations={torch.ops.aten.relu.default: wrong_relu})
    assert "not written" in str(info.value)
    assert not (tmp_path / "bad.onnx").exists() and not list(tmp_path.glob(".bad.onnx*"))


def test_export_of_an_untraceable_model_names_the_op(tmp_path: Path) -> None:
    from core.compress.onnx_export import export_onnx

    class Eigen(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(2)
            return torch.linalg.eigh(flat @ flat.transpose(1, 2))[0]

    x = torch.randn(4, 3, 4, 4)
    with pytest.raises(CompressionError, match=r"aten\._linalg_eigh"):
        export_onnx(Eigen(), x[:2], tmp_path / "e.onnx", verify_batch=x)


def test_quantizing_a_layer_type_without_an_int8_kernel_lists_what_stays_float(tmp_path: Path) -> None:
    from core.compress.onnx_export import export_onnx
    from core.compress.quantize import quantize_int8

    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(6, 8)
    export_onnx(model, x[:2], tmp_path / "m.onnx", verify_batch=x)
    with pytest.raises(CompressionError, match=r"no int8 kernel for 1 layer.*1 \(LayerNormalization\).*--allow-float"):
        quantize_int8(tmp_path / "m.onnx", mode="dynamic", calibration=[])
    result = quantize_int8(tmp_path / "m.onnx", mode="dynamic", calibration=[], allow_float=True)
    assert result.float_layers == [{"layer": "1", "op": "LayerNormalization",
                                    "why": "ONNX Runtime's dynamic int8 quantizer has no LayerNormalization kernel"}]
    assert result.quantized_layers == ["0", "3"]


@pytest.mark.parametrize("args, message", [
    (["--prune", "1.5"], "must lie strictly between 0 and 1"),
    (["--prune", "0"], "must lie strictly between 0 and 1"),
    (["--prune", "0.97"], "would remove every one of the 16 output channels of stage1.0"),
    (["--quantize", "int4"], "expected one of int8"),
    ([], "nothing to do"),
    (["--finetune-epochs", "1"], "fine-tunes a pruned model"),
    (["--prune", "0.5", "--prune-mode", "unstructured", "--finetune-epochs", "1"], "zeroed weights back"),
])
def test_bad_requests_exit_2_with_the_fix(trained: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["compress", str(trained), "--out", str(tmp_path / "o"), "--no-onnx", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "tradeoff.json").exists()


def test_missing_onnx_runtime_gives_the_pip_command(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    result = runner.invoke(app, ["export", str(trained), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2, result.output
    assert "pip install 'onnxruntime'" in " ".join(result.output.split())


def test_unstructured_pruning_zeroes_weights_and_keeps_shapes(trained: Path, tmp_path: Path) -> None:
    result = compress(trained, CompressOptions(prune=0.6, prune_mode="unstructured", onnx=False, repeats=3,
                                               out=tmp_path / "u"), say=lambda _: None)
    rows = {r["name"]: r for r in result.table["variants"]}
    assert rows["sparse60"]["sparsity"] == pytest.approx(0.6, abs=0.01)
    a, b = _load_safe(trained)["model"], _load_safe(tmp_path / "u" / "sparse60.pt")["model"]
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert evaluate_checkpoint(tmp_path / "u" / "sparse60.pt").metrics["acc"] == rows["sparse60"]["accuracy"]


def test_finetune_after_pruning_is_a_normal_run(trained: Path, tmp_path: Path) -> None:
    result = compress(trained, CompressOptions(prune=0.5, finetune_epochs=1, onnx=False, repeats=3,
                                               out=tmp_path / "ft"), say=lambda _: None)
    run_dir = result.finetune_run
    assert run_dir is not None and (run_dir / "run.json").is_file()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    assert (run_dir / "metrics.jsonl").read_text().strip() and (run_dir / "control").is_dir()
    assert (tmp_path / "ft" / "finetune.yaml").is_file()
    # the run's own checkpoints carry the pruned shapes, so they resume and evaluate as pruned models
    run_ckpt = _load_safe(run_dir / "checkpoints" / "last.pt")
    assert run_ckpt["model"]["stage1.0.weight"].shape[0] == 8
    assert run_ckpt["compression"]["steps"][0]["method"] == "structured"
    rows = {r["name"]: r for r in result.table["variants"]}
    variant = _load_safe(tmp_path / "ft" / "pruned50-ft1.pt")
    assert [s["kind"] for s in variant["compression"]["steps"]] == ["prune", "finetune"]
    pruned = _load_safe(tmp_path / "ft" / "pruned50.pt")["model"]
    assert not torch.equal(variant["model"]["stage1.0.weight"], pruned["stage1.0.weight"])  # it trained
    assert evaluate_checkpoint(tmp_path / "ft" / "pruned50-ft1.pt").metrics["acc"] == rows["pruned50-ft1"]["accuracy"]


@pytest.mark.asyncio
async def test_inspector_shows_the_trade_off_tab(compressed: dict) -> None:
    from support.app import text_of, wait_for
    from textual.widgets import Static, TabbedContent

    from tui.inspect_app import InspectApp

    app_ = InspectApp(compressed["out"] / "pruned50.pt")
    async with app_.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: getattr(app_.screen, "summary", None) is not None)
        await pilot.press("t")
        await pilot.pause(0.1)
        assert app_.screen.query_one(TabbedContent).active == "compression"
        text = text_of(app_.screen.query_one("#tradeoff-panel .body", Static))
    assert "Trade-off table" in text and "pruned50-int8" in text
    assert "structured pruning 50%" in text and "stage1.0" in text
    acc = compressed["rows"]["pruned50"]["accuracy"]
    assert f"{acc:.2%}" in text  # the numbers of tradeoff.json are on the screen


def test_a_user_model_exports_and_prunes_with_consent(tmp_path: Path) -> None:
    """A model from the user's own file: ONNX export and pruning go through the one rebuild path,
    which imports that file only with --trust-code."""
    import onnxruntime as ort
    from byo_support import byo_config

    from core.config import load_config

    trainer = Trainer(load_config(byo_config(tmp_path, trainer={"epochs": 1, "device": "cpu", "cpu_threads": 1})))
    trainer.fit()
    ckpt = trainer.run.path / "checkpoints" / "last.pt"
    refused = runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert refused.exit_code == 2 and "--trust-code" in refused.output and not (tmp_path / "m.onnx").exists()
    message = " ".join(refused.output.split())
    assert "--config" not in message  # `ftui export` has no --config: it is not suggested
    suggested = message.split("run `")[1].split("`")[0]
    assert suggested == f"ftui export {ckpt} --format onnx --trust-code"
    done = runner.invoke(app, [*shlex.split(suggested)[1:], "--out", str(tmp_path / "m.onnx")])  # as printed, + where
    assert done.exit_code == 0, done.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 8, 8), np.float32)})[0].shape == (2, 3)
    result = compress(ckpt, CompressOptions(prune=0.5, onnx=False, repeats=3, trust_code=True, out=tmp_path / "c"),
                      say=lambda _: None)
    pruned = _load_safe(tmp_path / "c" / "pruned50.pt")["model"]
    assert pruned["features.0.weight"].shape[0] == 4 and pruned["classifier.weight"].shape == (3, 8)
    row = {r["name"]: r for r in result.table["variants"]}["pruned50"]
    assert evaluate_checkpoint(tmp_path / "c" / "pruned50.pt", trust_code=True).metrics["acc"] == row["accuracy"]
