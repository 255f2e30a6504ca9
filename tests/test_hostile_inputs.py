"""Hostile input: what a user or a stray file does must never crash a run, corrupt its record or
read wrong weights (issue 16). One section per case; each feeds the case and asserts the outcome
that docs/run-format.md and docs/inspect.md promise.

The fuzz tests of the control-file parser and the config loader are in test_hostile_fuzz.py.
"""

from __future__ import annotations

import json
import math
import zipfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as load_safetensors
from typer.testing import CliRunner

from core.config import config_from_dict
from core.inspect import diff_checkpoints, export_weights, load_checkpoint, summarize, tensor_stats
from core.inspect.torchzip import StorageRef, read_torch_zip
from support.training import tiny_raw
from tui.cli import app

runner = CliRunner()


# --------------------------------------------------------------------------------------------------
# 5. Unusual but valid torch files read the same through every reading path
# --------------------------------------------------------------------------------------------------


def _rezip(src: Path, dst: Path, *, compress: int = zipfile.ZIP_STORED, zip64: bool = False) -> Path:
    """The same archive, entries compressed (``ZIP_DEFLATED``) or with zip64 records."""
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(dst, "w", compression=compress) as out:
        for info in archive.infolist():
            entry = zipfile.ZipInfo(info.filename)
            entry.compress_type = compress
            with out.open(entry, "w", force_zip64=zip64) as fh:
                fh.write(archive.read(info.filename))
    if compress != zipfile.ZIP_STORED:
        with zipfile.ZipFile(dst) as archive:
            assert all(i.compress_type == compress for i in archive.infolist())
    return dst


def _storages(obj: Any, out: dict[str, str]) -> dict[str, str]:
    """Archive entry -> dtype of every storage that torchzip's records point to."""
    if isinstance(obj, dict):
        for value in obj.values():
            _storages(value, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _storages(value, out)
    elif hasattr(obj, "storage") and isinstance(obj.storage, StorageRef):
        out[obj.storage.entry] = obj.storage.dtype
    return out


def _big_endian(src: Path, dst: Path) -> Path:
    """The file as a big-endian machine writes it: ``byteorder`` says "big", every element byte-swapped."""
    dtypes = _storages(read_torch_zip(src), {})
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(dst, "w") as out:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif info.filename in dtypes:
                dtype = dtypes[info.filename]
                width = torch.empty(0, dtype=getattr(torch, dtype)).element_size()
                if width > 1:
                    data = np.frombuffer(data, dtype=f"<u{width}").byteswap().tobytes()
            out.writestr(info, data)
    return dst


def _legacy(src: Path, dst: Path) -> Path:
    """The pre-1.6 (non-zip, pickle) format of the same object."""
    torch.save(torch.load(src, weights_only=True), dst, _use_new_zipfile_serialization=False)
    return dst


VARIANTS: dict[str, Callable[[Path, Path], Path]] = {
    "deflated": lambda s, d: _rezip(s, d, compress=zipfile.ZIP_DEFLATED),
    "zip64": lambda s, d: _rezip(s, d, zip64=True),
    "big-endian": _big_endian,
    "legacy": _legacy,
}


@pytest.fixture(scope="module")
def ftui_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (one-epoch) ftui checkpoint, whose weights eval and resume read too."""
    from core.training.trainer import Trainer

    root = tmp_path_factory.mktemp("hostile-ckpt")
    Trainer(config_from_dict(tiny_raw(root, "odd", trainer={"epochs": 1}))).fit()
    return root / "odd" / "checkpoints" / "last.pt"


def _odd_state_dict(path: Path) -> Path:
    """Shared storages and views with offsets: tied weights, a slice and a transpose of one buffer."""
    torch.manual_seed(0)
    base = torch.randn(40)
    state = {
        "enc.weight": base[:24].view(4, 6),  # a view at offset 0
        "enc.bias": base[24:28],  # a view at offset 24 of the same storage
        "dec.weight": base[:24].view(4, 6).t(),  # a transposed view, tied to enc.weight
        "dec.bias": torch.arange(6, dtype=torch.float64),
        "bn.num_batches_tracked": torch.tensor(7),
        "half": torch.randn(3, 2).to(torch.bfloat16),
    }
    torch.save(state, path)
    return path


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without what differs between two files of the same content."""
    return {k: v for k, v in summary.items() if k not in ("path", "container", "files", "file_size", "created")}


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unusual_torch_files_read_alike_in_inspect_diff_export_and_weights(variant: str, tmp_path: Path) -> None:
    from core.models.weights import load_weights

    source = _odd_state_dict(tmp_path / "plain.pt")
    odd = VARIANTS[variant](source, tmp_path / f"{variant}.pt")
    plain, other = load_checkpoint(source), load_checkpoint(odd)
    truth = torch.load(source, weights_only=True)

    # inspect: the summary (torch-free where the reader models the file) and every tensor's statistics
    assert _comparable(summarize(other)) == _comparable(summarize(plain))
    for name in truth:
        assert tensor_stats(other.weights.get(name), name) == tensor_stats(truth[name], name)
    # diff: nothing changed, tensor by tensor
    report = diff_checkpoints(plain, other)
    assert report.counts()["unchanged"] == len(truth) and report.counts()["changed"] == 0
    # export: the safetensors file holds the original values
    exported = load_safetensors(str(export_weights(other, "safetensors", tmp_path / "out.safetensors")))
    _assert_same_tensors({k: exported[k] for k in truth}, {k: v.contiguous() for k, v in truth.items()})
    # model.weights: loading into a module gives the same parameters
    module = torch.nn.Module()
    module.enc, module.dec = torch.nn.Linear(6, 4), torch.nn.Linear(4, 6)
    report = load_weights(module, odd)
    assert report.matched == ["dec.bias", "dec.weight", "enc.bias", "enc.weight"]
    assert torch.equal(module.enc.weight.detach(), truth["enc.weight"])
    assert torch.equal(module.enc.bias.detach(), truth["enc.bias"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unusual_ftui_checkpoints_evaluate_and_diff_like_the_original(
    variant: str, ftui_checkpoint: Path, tmp_path: Path
) -> None:
    from core.training.evaluate import evaluate_checkpoint

    odd = VARIANTS[variant](ftui_checkpoint, tmp_path / f"{variant}.pt")
    plain, other = load_checkpoint(ftui_checkpoint), load_checkpoint(odd)
    assert _comparable(summarize(other)) == _comparable(summarize(plain))
    report = diff_checkpoints(plain, other)
    assert set(report.counts()) >= {"unchanged"} and report.counts()["unchanged"] == len(plain.weights)
    out = tmp_path / "export.pt"
    export_weights(other, "state_dict", out)
    truth = torch.load(ftui_checkpoint, weights_only=True)["model"]
    _assert_same_tensors(torch.load(out, weights_only=True), truth)

    expected = evaluate_checkpoint(ftui_checkpoint, split="val").metrics
    got = evaluate_checkpoint(odd, split="val").metrics
    assert got["acc"] == expected["acc"] and math.isclose(got["loss"], expected["loss"], rel_tol=1e-6)
    assert got["confusion"] == expected["confusion"]


def test_diff_and_export_of_a_deflated_file_through_the_cli(ftui_checkpoint: Path, tmp_path: Path) -> None:
    """The reported case: `ftui diff` said every tensor changed by ~1e37, `ftui export` wrote garbage."""
    odd = _rezip(ftui_checkpoint, tmp_path / "deflated.pt", compress=zipfile.ZIP_DEFLATED)
    result = runner.invoke(app, ["diff", str(ftui_checkpoint), str(odd), "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)["counts"]
    assert counts["changed"] == 0 and counts["unchanged"] > 0
    result = runner.invoke(app, ["export", str(odd), "--out", str(tmp_path / "w.safetensors")])
    assert result.exit_code == 0, result.output
    truth = torch.load(ftui_checkpoint, weights_only=True)["model"]
    _assert_same_tensors(load_safetensors(str(tmp_path / "w.safetensors")), truth)


# --------------------------------------------------------------------------------------------------
# 9. A torn last line (a crash mid-write) never swallows the next record
# --------------------------------------------------------------------------------------------------


def test_appending_after_a_torn_last_line_keeps_every_new_record(tmp_path: Path) -> None:
    from core.runs import EVENTS, METRICS, JsonlTail, RunWriter

    writer = RunWriter.create(tmp_path, "torn")
    writer.log_metrics(1, 0, "train", {"loss": 1.0})
    writer.close()
    metrics = writer.path / METRICS
    with metrics.open("ab") as fh:
        fh.write(b'{"step":2,"epoch":0,"time":1.0,"split":"tr')  # killed here
    (writer.path / EVENTS).write_bytes(b'{"kind":"start')  # a file holding nothing but a torn line

    resumed = RunWriter.reopen(writer.path)
    resumed.log_metrics(3, 0, "train", {"loss": 0.5})
    resumed.log_event("resumed", "resumed")
    resumed.close()
    tail = JsonlTail(metrics)
    assert [row["step"] for row in tail.poll()] == [1, 3] and tail.bad_lines == 1
    tail = JsonlTail(writer.path / EVENTS)
    assert [row["kind"] for row in tail.poll()] == ["resumed"] and tail.bad_lines == 1
    # a clean file gets no blank line
    again = RunWriter.reopen(writer.path)
    again.log_metrics(4, 0, "train", {"loss": 0.4})
    again.close()
    assert metrics.read_bytes().count(b"\n\n") == 0


# --------------------------------------------------------------------------------------------------
# 11. Configs that would hang the loader or eat memory are refused, quickly, with exit 2
# --------------------------------------------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
) + "\n"


def _check(path: Path | str, *extra: str) -> Any:
    return runner.invoke(app, ["config", "check", str(path), *extra])


@pytest.mark.timeout(60)  # a guard against the hang itself, not a speed target
def test_config_bombs_are_refused_with_exit_2(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400  # the reported 324-byte class of file
    result = _check(bomb)
    assert result.exit_code == 2 and "aliases expand to more than 100000 values" in result.output
    assert str(bomb) in result.output and "Traceback" not in result.output

    selfref = tmp_path / "selfref.yaml"
    selfref.write_text("model:\n  kwargs:\n    x: &loop [1, *loop]\n")
    result = _check(selfref)
    assert result.exit_code == 2 and "line 3" in result.output and "inside its own anchor" in result.output

    deep = tmp_path / "deep.yaml"
    deep.write_text("model:\n  kwargs:\n    x: " + "[" * 5000 + "]" * 5000 + "\n")
    result = _check(deep)
    assert result.exit_code == 2 and "nested more than 64 levels" in result.output and "line 3" in result.output

    big = tmp_path / "big.yaml"
    big.write_text("run:\n  notes: |\n" + ("    " + "x" * 95 + "\n") * 11_000)
    result = _check(big)
    assert result.exit_code == 2 and "larger than 1 MiB" in result.output

    result = _check("/dev/zero")
    assert result.exit_code == 2 and "larger than 1 MiB" in result.output

    plain = tmp_path / "plain.yaml"
    plain.write_text("trainer:\n  epochs: 1\n")
    result = _check(plain, "--set", "model.kwargs.x=&a [*a]")
    assert result.exit_code == 2 and "--set model.kwargs.x: refused" in result.output


def test_aliases_and_anchors_of_a_sensible_config_still_work(tmp_path: Path) -> None:
    from core.config import load_config

    path = tmp_path / "anchors.yaml"
    path.write_text(
        "optim: &opt {lr: 0.02}\n"
        "finetune:\n  lr_groups:\n    - {match: 'stage1', lr: 0.01}\n"
        "model:\n  name: resnet18\n  kwargs:\n    a: &shared [1, 2, 3]\n    b: *shared\n"
    )
    cfg = load_config(path, ["model.kwargs.c=[4, 5]"])
    assert cfg.optim.lr == 0.02 and cfg.model.kwargs == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [4, 5]}


# --------------------------------------------------------------------------------------------------
# 12. Bad input that ended in a traceback: now exit 2 with a message naming the file or the key
# --------------------------------------------------------------------------------------------------


def _clean_exit_2(result: Any, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    flat = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in flat, (fragment, result.output)


def _yaml(path: Path, raw: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", ".hidden"])
def test_a_run_name_that_is_a_path_is_refused_before_anything_is_created(tmp_path: Path, name: str) -> None:
    cfg = _yaml(tmp_path / "c.yaml", tiny_raw(tmp_path / "runs", "ok"))
    result = runner.invoke(app, ["run", str(cfg), "--name", name])
    _clean_exit_2(result, f"--name {name!r}", "no '/', no '..'")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height: Pillow refuses it on open, before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_a_decompression_bomb_image_is_named_in_preview_and_in_run(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(root / c / f"{i}.png")
    bomb = root / "dog" / "huge.png"
    _png_header(bomb, 20000, 20000)
    raw = tiny_raw(tmp_path / "runs", "bomb", data={"source": "imagefolder", "root": str(root), "image_size": 8})
    cfg = _yaml(tmp_path / "bomb.yaml", raw)
    _clean_exit_2(runner.invoke(app, ["data", "preview", str(cfg)]), str(bomb), "too large to decode safely")
    _clean_exit_2(runner.invoke(app, ["run", str(cfg)]), str(bomb), "too large to decode safely")


def test_a_second_ctrl_c_while_the_process_shuts_down_exits_quietly(tmp_path: Path) -> None:
    """atexit handlers (data-loader workers, writer threads) run after the outcome is recorded; a
    Ctrl-C there printed a KeyboardInterrupt traceback or killed the process with -2."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import atexit, sys, time\n"
        "atexit.register(lambda: time.sleep(30))  # stands in for joining a worker\n"
        "from tui.cli import main\n"
        "sys.argv = ['ftui', '--version']\n"
        "main()\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(root)}, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("ftui ")  # the command is done; atexit is running
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


# --------------------------------------------------------------------------------------------------
# 13. Bad values that passed through: infinite lr, infinite CSV values, ignored kwargs, "lr": true
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_non_finite_number_in_the_config_is_refused(tmp_path: Path, value: str) -> None:
    cfg = _yaml(tmp_path / "c.yaml", {"trainer": {"epochs": 1}})
    _clean_exit_2(_check(cfg, "--set", f"optim.lr={value}"), "optim.lr (from --set)", "finite number")
    cfg.write_text(f"optim:\n  lr: {value}\n")
    _clean_exit_2(_check(cfg), "optim.lr (line 2)", "finite number")


def test_infinite_values_in_a_csv_name_the_column_and_the_lines(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    rows = ["a,b,label"] + [f"{i},{i % 3},{'yes' if i % 2 else 'no'}" for i in range(40)]
    rows[5] = "inf,1,yes"
    rows[9] = "-inf,2,no"
    csv.write_text("\n".join(rows) + "\n")
    cfg = _yaml(tmp_path / "c.yaml", {"data": {"source": "csv", "csv": {"path": str(csv), "target": "label"}}})
    result = runner.invoke(app, ["data", "preview", str(cfg)])
    _clean_exit_2(result, "column 'a'", str(csv), "2 infinite value(s) (lines 6, 10")
    assert "optim.lr" not in result.output


def test_model_kwargs_that_the_model_would_ignore_are_refused(tmp_path: Path) -> None:
    from core.config import ModelConfig
    from core.errors import ModelError
    from core.models.registry import build_model

    cfg = _yaml(tmp_path / "c.yaml", {"trainer": {"epochs": 1}, "data": {"shapes": {"image_size": 16}}})
    result = runner.invoke(app, ["model", "show", str(cfg), "--set", "model.kwargs.foo=1"])
    _clean_exit_2(result, "model.kwargs", "simple_cnn", "takes no keyword arguments", "Fix: remove model.kwargs")
    result = runner.invoke(app, ["run", str(cfg), "--set", "model.name=mlp", "--set", "model.kwargs.foo=1",
                                 "--set", f"run.root={tmp_path / 'runs'}"])
    _clean_exit_2(result, "model.kwargs: mlp is built into ftui")
    assert not (tmp_path / "runs").exists()
    # torchvision's ConvNeXt and MobileNetV3 accept **kwargs and drop unknown ones
    with pytest.raises(ModelError, match=r"model.kwargs: mobilenet_v3_small does not take foo"):
        build_model(ModelConfig(name="mobilenet_v3_small", kwargs={"foo": 1}), 3, (3, 32, 32))
    fitting = ModelConfig(name="mobilenet_v3_small", kwargs={"width_mult": 0.5, "dropout": 0.1})
    built = build_model(fitting, 3, (3, 32, 32))
    assert built.model.classifier[2].p == 0.1


@pytest.mark.parametrize("args", [{"group": "all", "lr": True}, {"group": ["all"], "lr": 0.1},
                                  {"group": {"x": 1}, "lr": 0.1}, {"group": "all", "lr": "nan"}])
def test_control_arguments_of_the_wrong_type_are_refused(args: dict[str, Any]) -> None:
    from core.control import ControlError, validate_command

    with pytest.raises(ControlError):
        validate_command("set-lr", args)


# --------------------------------------------------------------------------------------------------
# 14. User strings reach Rich and Textual as text, never as markup
# --------------------------------------------------------------------------------------------------

MARKUP_NAMES = ["[red]bold", "x[/]y", "[link=file:///etc]z"]


def test_class_and_tensor_names_that_look_like_markup_are_shown_as_written(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from core.training.trainer import Trainer
    from tui.widgets.confusion_matrix import confusion_table

    csv = tmp_path / "m.csv"
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{MARKUP_NAMES[i % 3]}" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    raw = tiny_raw(tmp_path / "runs", "markup", data={"source": "csv", "csv": {"path": str(csv), "target": "label"},
                                                       "val_fraction": 0.3, "batch_size": 8},
                   model={"name": "mlp", "hidden": [8]}, trainer={"epochs": 1})
    raw["model"].pop("channels")
    raw["data"].pop("shapes"), raw["data"].pop("augment")
    cfg = _yaml(tmp_path / "markup.yaml", raw)
    result = runner.invoke(app, ["data", "preview", str(cfg), "--n", "2"])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in MARKUP_NAMES), result.output

    Trainer(config_from_dict(raw)).fit()
    ckpt = tmp_path / "runs" / "markup" / "checkpoints" / "last.pt"
    result = runner.invoke(app, ["eval", str(ckpt), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in MARKUP_NAMES), result.output

    console = Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)
    console.print(confusion_table([[1, 0, 0], [0, 1, 0], [0, 0, 1]], MARKUP_NAMES, "val"))
    assert all(name[:6] in console.file.getvalue() for name in MARKUP_NAMES)

    foreign = tmp_path / "foreign.pt"
    torch.save({f"{name}.weight": torch.zeros(2) for name in MARKUP_NAMES}, foreign)
    result = runner.invoke(app, ["inspect", str(foreign), "--plain"])
    assert result.exit_code == 0, result.output
    assert all(f"{name}.weight" in result.output for name in MARKUP_NAMES) and "[torch-zip]" in result.output
    result = runner.invoke(app, ["diff", str(foreign), str(foreign)])
    assert result.exit_code == 0 and "x[/]y" in result.output, result.output


# --------------------------------------------------------------------------------------------------
# 7. Weights of another architecture are refused, not silently trained from scratch
# --------------------------------------------------------------------------------------------------


def test_weights_of_another_architecture_are_refused_unless_asked_for(tmp_path: Path) -> None:
    from core.config import ModelConfig
    from core.models.registry import build_model

    other = build_model(ModelConfig(name="simple_cnn", channels=[8, 16]), 3, (3, 16, 16)).model
    weights = tmp_path / "other.pt"
    torch.save(other.state_dict(), weights)
    # the config's model has channels [4, 8]
    raw = tiny_raw(tmp_path / "runs", "wrong", model={"weights": str(weights)}, trainer={"epochs": 1})
    cfg = _yaml(tmp_path / "wrong.yaml", raw)
    result = runner.invoke(app, ["run", str(cfg)])
    _clean_exit_2(result, f"model.weights: {weights} does not fit",
                  "stage1.0.weight (file [8, 3, 3, 3], model [4, 3, 3, 3])", "model.weights_strict: false")
    assert not (tmp_path / "runs" / "wrong").exists()  # refused before the run directory exists

    result = runner.invoke(app, ["run", str(cfg), "--set", "model.weights_strict=false",
                                 "--set", "logging.progress=plain"])
    assert result.exit_code == 0, result.output
    assert f"weights: loaded 0 tensors from {weights}" not in result.output  # the one that fits is counted
    assert "shape-mismatched" in result.output and "not loaded: stage1.0.weight" in result.output

    same = build_model(ModelConfig(name="simple_cnn", channels=[4, 8]), 5, (3, 16, 16)).model
    torch.save(same.state_dict(), tmp_path / "same.pt")  # another class count: only the head differs
    report = build_model(ModelConfig(name="simple_cnn", channels=[4, 8], weights=str(tmp_path / "same.pt")), 3,
                         (3, 16, 16)).load_report
    assert report is not None and report.head_only and report.loaded_fraction == 1.0


def test_the_global_root_flag_is_the_runs_root_of_every_command(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path / "from-config", "rooted", trainer={"epochs": 1, "max_steps": 2})
    cfg = _yaml(tmp_path / "rooted.yaml", raw)
    elsewhere = tmp_path / "flag root"
    result = runner.invoke(app, ["--root", str(elsewhere), "run", str(cfg)])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "rooted" / "run.json").is_file() and not (tmp_path / "from-config").exists()
    result = runner.invoke(app, ["--root", str(elsewhere), "ctl", "rooted", "pause"])
    _clean_exit_2(result, str(elsewhere / "rooted"), "the run is finished")  # found under the flag's root
    result = runner.invoke(app, ["--root", str(elsewhere), "ctl", "missing", "pause"])
    _clean_exit_2(result, str(elsewhere / "missing"))


# --------------------------------------------------------------------------------------------------
# 1, 2, 14. Nothing in control/ can end a run: poison files are refused, answered and set aside
# --------------------------------------------------------------------------------------------------


def _events(run: Path) -> list[dict[str, Any]]:
    from core.runs import EVENTS, JsonlTail

    return JsonlTail(run / EVENTS).poll()


def _drop(run: Path, name: str, data: bytes) -> Path:
    path = run / "control" / name
    path.write_bytes(data)
    return path


def test_poison_control_files_are_refused_set_aside_and_the_run_goes_on(tmp_path: Path) -> None:
    import os
    import time

    from core import control
    from core.runs import RunWriter
    from core.training.trainer import Trainer

    run = RunWriter.create(tmp_path, "poison").path
    deep = b'{"command":"freeze","args":{"pattern":' + b"[" * 30_000 + b"]" * 30_000 + b"}}"  # 60 KB
    _drop(run, "00000000000000000001-deep.json", deep)
    _drop(run, "00000000000000000002-deep2k.json", b'{"command":"freeze","args":{"pattern":' + b"[" * 960
          + b"]" * 960 + b"}}")
    _drop(run, "00000000000000000003-huge.json", b'{"command":"stop","args":{"x":"' + b"A" * 2_000_000 + b'"}}')
    junk = json.dumps({"id": "00000000000000000004-junk", "command": "freeze", "args": {"pattern": "stage1",
                                                                                         "junk": "B" * 50_000}})
    _drop(run, "00000000000000000004-junk.json", junk.encode())
    future = _drop(run, "00000000000000000005-future.json", b"{not json")
    os.utime(future, (time.time() + 3600, time.time() + 3600))  # a skewed clock: it must not wait forever
    _drop(run, "00000000000000000006-list.json", b"[1, 2, 3]")
    (run / "control" / "done").write_text("a stray file where the done/ folder goes\n")
    control.send(run, "freeze", {"pattern": "all"})  # would leave nothing to train
    control.send(run, "set-lr", {"group": "all", "lr": 0.02})  # a good command after all of that

    cfg = config_from_dict(tiny_raw(tmp_path, "poison", trainer={"epochs": 1, "max_steps": 3}))
    trainer = Trainer(cfg, run_dir=run)
    trainer.fit()
    assert trainer.status == "finished" and trainer.global_step == 3  # nothing ended the run

    answers = {e["id"]: e for e in _events(run) if e["kind"] == "control"}
    by_file = {i.split("-", 1)[1] if i[:20].isdigit() and len(i) > 21 else i: e for i, e in answers.items()}
    assert "nested 30002 levels deep" in by_file["deep"]["message"]
    assert "nested 962 levels deep" in by_file["deep2k"]["message"]
    assert "larger than 64 KiB" in by_file["huge"]["message"]
    assert "unexpected argument(s) ['junk']" in by_file["junk"]["message"]
    assert len(json.dumps(by_file["junk"])) < 3000 and "truncated" in by_file["junk"]["args"]  # not a 50 KB line
    assert "is not valid JSON" in by_file["future"]["message"]
    assert "holds a JSON list" in by_file["list"]["message"]
    freeze_all = next(e for e in answers.values() if e["command"] == "freeze" and e.get("args") == {"pattern": "all"})
    assert freeze_all["status"] == "error" and "would freeze every trainable parameter" in freeze_all["message"]
    assert next(e for e in answers.values() if e["command"] == "set-lr")["status"] == "ok"
    assert max(len(line) for line in (run / "events.jsonl").read_text().splitlines()) < 4000

    left = sorted(p.name for p in (run / "control").iterdir())
    assert left[1:] == ["done", "rejected"] and left[0].startswith(".stray-done-")  # the stray file kept, aside
    rejected = sorted(p.name.split("-", 1)[1] for p in (run / "control" / "rejected").iterdir())
    assert rejected == ["deep.json", "deep2k.json", "future.json", "huge.json", "list.json"]
    assert all(p.requires_grad for p in trainer.model.parameters())  # freeze all changed nothing


def test_freezing_everything_in_the_config_is_an_exit_2_naming_the_key(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path / "runs", "frozen", finetune={"freeze": ["all"]}, trainer={"epochs": 1})
    cfg = _yaml(tmp_path / "frozen.yaml", raw)
    _clean_exit_2(runner.invoke(app, ["run", str(cfg)]), "finetune.freeze: ['all'] leaves no parameter to train")
    assert not (tmp_path / "runs" / "frozen").exists()
    # freezing all and giving the head back is the usual linear probe, and trains
    result = runner.invoke(app, ["run", str(cfg), "--set", "finetune.unfreeze=[head]", "--set", "trainer.max_steps=2"])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------------
# 3. Commands queued for a run that died are set aside on resume, not applied
# --------------------------------------------------------------------------------------------------


def test_commands_sent_to_a_dead_run_are_set_aside_when_it_resumes(tmp_path: Path) -> None:
    from core import control
    from core.training.trainer import Trainer

    raw = tiny_raw(tmp_path, "stale", trainer={"epochs": 2})
    first = Trainer(config_from_dict({**raw, "trainer": {**raw["trainer"], "max_steps": 3}}))
    first.fit()
    run = first.run.path
    stale = control.send(run, "stop")  # `ftui ctl stale stop` after the process died: never answered
    time.sleep(0.05)

    second = Trainer(config_from_dict(raw), run_dir=run)
    second.fit(resume_from=run / "checkpoints" / "last.pt")
    assert second.status == "finished" and second.global_step == second.total_steps > 3  # not stopped at once
    answer = next(e for e in _events(run) if e["kind"] == "control" and e["id"] == stale.id)
    assert answer["status"] == "error" and answer["reason"] == "stale" and "set aside" in answer["message"]
    assert (run / "control" / "done" / f"{stale.id}.json").is_file()


# --------------------------------------------------------------------------------------------------
# 4. One process trains a run: the second is refused (exit 2, the holder's pid), nothing written
# --------------------------------------------------------------------------------------------------


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "run.lock"}


def test_a_second_process_cannot_train_into_a_locked_run_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from core.training.trainer import Trainer

    raw = tiny_raw(tmp_path, "locked", trainer={"epochs": 2, "max_steps": 2})
    first = Trainer(config_from_dict(raw))
    first.fit()
    run = first.run.path
    assert (run / "run.lock").is_file()

    root = Path(__file__).resolve().parents[1]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom core.runs import RunWriter\n"
         f"RunWriter.reopen({str(run)!r}).lock()\nprint('locked', flush=True)\ntime.sleep(60)\n"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = _snapshot(run)
        cfg = _yaml(tmp_path / "locked.yaml", {**raw, "trainer": {**raw["trainer"], "max_steps": 4}})
        # run.json says finished, so only the lock can stop it
        result = runner.invoke(app, ["run", str(cfg), "--resume", str(run)])
        _clean_exit_2(result, f"another process (pid {holder.pid}) is training this run")
        assert _snapshot(run) == before  # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    # the kernel dropped the killed holder's lock: the run resumes at once
    result = runner.invoke(app, ["run", str(cfg), "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "run.lock").read_text().strip() != str(holder.pid)


# --------------------------------------------------------------------------------------------------
# 10. A pause at an epoch boundary is not taken off training time that never ran
# --------------------------------------------------------------------------------------------------


def test_a_pause_at_an_epoch_boundary_leaves_train_seconds_positive(tmp_path: Path) -> None:
    import threading

    from core import control
    from core.runs import RunWriter, read_json
    from core.training.trainer import Trainer

    run = RunWriter.create(tmp_path, "paused").path
    control.send(run, "pause")  # applied at the first epoch start: before any training time
    trainer = Trainer(config_from_dict(tiny_raw(tmp_path, "paused", trainer={"epochs": 1, "max_steps": 3})),
                      run_dir=run)
    thread = threading.Thread(target=trainer.fit, daemon=True)
    started = time.perf_counter()
    thread.start()
    deadline = time.monotonic() + 30
    while not (read_json(run / "run.json") or {}).get("paused") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    control.send(run, "resume")
    thread.join(60)
    wall = time.perf_counter() - started
    assert trainer.status == "finished" and trainer.global_step == 3
    seconds = read_json(run / "run.json")["train_seconds"]
    assert 0 < seconds < wall - 1.5  # neither negative nor counting the pause


# --------------------------------------------------------------------------------------------------
# 6. Weights that became non-finite fail the run (skip mode too); `best` names only a written file
# --------------------------------------------------------------------------------------------------


def test_a_diverged_run_in_skip_mode_fails_instead_of_finishing_with_nan_weights(tmp_path: Path) -> None:
    from core.runs import read_json

    raw = tiny_raw(tmp_path / "runs", "diverge", optim={"name": "sgd", "lr": 1e4, "momentum": 0.9, "weight_decay": 0},
                   schedule={"name": "none"}, trainer={"epochs": 3, "on_nonfinite": "skip"})
    result = runner.invoke(app, ["run", str(_yaml(tmp_path / "diverge.yaml", raw))])
    assert result.exit_code == 1, result.output
    assert "the weights became non-finite" in result.output and "optim.lr (now 10000)" in result.output
    info = read_json(tmp_path / "runs" / "diverge" / "run.json")
    assert info["status"] == "failed" and "non-finite" in info["error"]
    best = info.get("best") or {}
    assert "checkpoint" not in best or Path(best["checkpoint"]).is_file()


def test_best_never_names_a_checkpoint_that_was_not_written(tmp_path: Path) -> None:
    from core.training.callbacks.checkpointing import CheckpointCallback
    from core.training.trainer import Trainer

    trainer = Trainer(config_from_dict(tiny_raw(tmp_path, "best", trainer={"epochs": 1})))
    trainer.fit()
    callback = next(cb for cb in trainer.callbacks if isinstance(cb, CheckpointCallback))
    before = dict(callback.best)
    assert Path(before["checkpoint"]).is_file()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    trainer.run = type(trainer.run).reopen(trainer.run.path)
    trainer.callback_metrics["val/acc"] = before["value"] + 0.5  # "improved", by a model that cannot be saved
    callback.on_validation_end(trainer)
    trainer.run.close()
    assert callback.best == before and trainer.best == before


# --------------------------------------------------------------------------------------------------
# 8. A refused resume changes nothing on disk
# --------------------------------------------------------------------------------------------------


def test_a_refused_resume_leaves_the_run_exactly_as_it_was(tmp_path: Path) -> None:
    from core.training.resume import config_changes

    raw = tiny_raw(tmp_path, "kept", trainer={"epochs": 2, "max_steps": 3})
    cfg = _yaml(tmp_path / "kept.yaml", raw)
    assert runner.invoke(app, ["run", str(cfg)]).exit_code == 0
    run = tmp_path / "kept"
    before = _snapshot(run)

    result = runner.invoke(app, ["run", str(cfg), "--resume", str(run), "--set", "model.channels=[8,16,32]"])
    _clean_exit_2(result, "the config would change the model, the data or the optimizer's layout",
                  "model.channels: [4, 8] -> [8, 16, 32]", "Nothing was written to the run")
    assert _snapshot(run) == before

    # other data: refused the same way, before setup would have found the data missing
    result = runner.invoke(app, ["run", str(cfg), "--resume", str(run), "--set", "data.source=imagefolder",
                                 "--set", f"data.root={tmp_path / 'gone'}"])
    _clean_exit_2(result, "data.source: 'shapes' -> 'imagefolder'", "Nothing was written to the run")
    assert _snapshot(run) == before

    result = runner.invoke(app, ["run", str(cfg), "--resume", str(run), "--set", "trainer.max_steps=5"])
    assert result.exit_code == 0, result.output
    import yaml

    assert config_changes(None, config_from_dict(raw)) == {}
    changed = config_changes(yaml.safe_load((run / "config.yaml").read_text()), config_from_dict(raw))
    assert changed == {"trainer.max_steps": (5, 3)}


# --------------------------------------------------------------------------------------------------
# 14. A full disk: the run is recorded failed, with a message that says so
# --------------------------------------------------------------------------------------------------


def test_run_json_is_rewritten_in_place_when_no_temp_file_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import core.runs as runs

    writer = runs.RunWriter.create(tmp_path, "full", status="running")
    writer.set_status("running")

    def no_space(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "atomic_write_text", no_space)  # the temp file of an atomic write has no room
    writer.set_status("failed", error="no space left")
    assert runs.read_json(writer.path / "run.json")["status"] == "failed"


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 2 MB tmpfs, when this process may mount one (root in a container); else the test is skipped."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the in-place fallback is tested above")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_run_that_fills_the_disk_ends_failed_with_the_reason(small_disk: Path) -> None:
    from core.errors import TrainingFailed
    from core.runs import read_json
    from core.training.callback import Callback
    from core.training.trainer import Trainer

    class FillTheDisk(Callback):  # another process takes the last free block at step 8
        def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == 8 and not (small_disk / "filler").exists():
                try:
                    with open(small_disk / "filler", "wb") as fh:
                        while True:
                            fh.write(b"x" * 65536)
                            fh.flush()
                except OSError:
                    pass

    raw = tiny_raw(small_disk, "full", trainer={"epochs": 5}, model={"channels": [16, 32]})
    with pytest.raises(TrainingFailed, match="no space left on the disk of"):
        Trainer(config_from_dict(raw), callbacks=[FillTheDisk()]).fit()
    info = read_json(small_disk / "full" / "run.json")
    assert info["status"] == "failed" and "no space left" in info["error"]


def test_an_error_prints_what_the_file_holds_as_text_not_as_emoji_or_markup(tmp_path: Path) -> None:
    # a passwd-like file: Rich's emoji codes turned the bytes b'root:x:0:0' into 'root❌0:0'
    passwd = tmp_path / "passwd[red]"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    result = runner.invoke(app, ["inspect", str(passwd)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "root:x:0:0" in result.output and "❌" not in result.output and "passwd[red]" in result.output
