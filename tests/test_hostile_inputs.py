"""Hostile input: what a user or a stray file does must never crash a run, corrupt its record or
read wrong weights (issue 16). One section per case; each feeds the case and asserts the outcome
that docs/run-format.md and docs/inspect.md promise.

The fuzz tests of the control-file parser and the config loader are in test_hostile_fuzz.py.
"""

from __future__ import annotations

import json
import math
import zipfile
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
from test_trainer_support import tiny_raw
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
        "model:\n  kwargs:\n    a: &shared [1, 2, 3]\n    b: *shared\n"
    )
    cfg = load_config(path, ["model.kwargs.c=[4, 5]"])
    assert cfg.optim.lr == 0.02 and cfg.model.kwargs == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [4, 5]}
