"""The ``ftui`` command line: thin Typer commands that call ``core`` or open the app.

Importing this module must stay cheap: no torch, no Textual. Every command imports what it needs
inside its body, from ``tui.commands.*``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from core import __version__
from core.errors import FtuiError
from tui.console import print_error

F = TypeVar("F", bound=Callable[..., Any])


def _env_debug() -> bool:
    return os.environ.get("FTUI_DEBUG", "") not in ("", "0")


_STATE: dict[str, Any] = {"debug": _env_debug(), "root": None}
DEFAULT_ROOT = Path("runs")

app = typer.Typer(
    name="ftui",
    help="Train and fine-tune PyTorch models from the terminal. Run without a command to open the app.",
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Validate, show and describe configs.", no_args_is_help=True)
data_app = typer.Typer(help="Look at a config's data before training.", no_args_is_help=True)
model_app = typer.Typer(help="Look at a config's model before training.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
runs_app = typer.Typer(help="List and manage runs: ls, rm, restore, mv, tag, note, archive.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def handles_errors(fn: F) -> F:
    """Turn ftui's errors into a message and an exit code; ``--debug`` re-raises for the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FtuiError as exc:
            if _STATE["debug"]:
                raise
            print_error(_escape(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _STATE["debug"]:
                raise
            from core.runs import RunStatus

            print_error("interrupted")
            raise typer.Exit(RunStatus.INTERRUPTED.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ftui {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    root: Annotated[
        Optional[Path],
        typer.Option("--root", help="Runs root directory: for the app, and for every command below "
                     "(`ftui --root X run` records under X, like --set run.root=X)."),
    ] = None,
) -> None:
    """Train and fine-tune PyTorch models from the terminal."""
    # set on every invocation: one process (tests, notebooks) may run several commands
    _STATE["debug"] = debug or _env_debug()
    _STATE["root"] = root
    if ctx.invoked_subcommand is None:
        _open_app(root or DEFAULT_ROOT)


def _root(own: Path | None) -> Path:
    """A command's runs root: its own --root, else ``ftui --root``, else ``runs``."""
    return own or _STATE["root"] or DEFAULT_ROOT


@handles_errors
def _open_app(root: Path) -> None:
    from tui.commands.app_cmd import open_home

    open_home(root)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config key: --set optim.lr=0.01 (repeatable)."),
]


@app.command()
@handles_errors
def run(
    config: Annotated[Optional[Path], typer.Argument(help="Config YAML file (with --resume: default the run's own config.yaml).")] = None,
    set_: SetOption = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: run.name or the config's stem).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Resume this run (name or directory) from its last.pt, with its own config; --set may change epochs, steps, lrs, logging.")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Start in the background (own session, output to stdout.log) and print the run directory.")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", min=1, help="Local processes for distributed training.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.")] = False,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", hidden=True, help="Use this already-created run directory (set by the detached launcher).")] = None,
) -> None:
    """Train headless from a config (Rich progress on a terminal, plain lines otherwise)."""
    from tui.commands.run_cmd import run_command

    overrides = list(set_ or [])
    if _STATE["root"] is not None:  # `ftui --root X run`: X is the run's root, as if set in the config
        overrides.insert(0, f"run.root={json.dumps(str(_STATE['root']))}")
    code = run_command(
        config, overrides, name=name, resume=resume, detach=detach, nproc=nproc, quiet=quiet, run_dir=run_dir,
        runs_root=_STATE["root"],
    )
    raise typer.Exit(code)


@app.command()
@handles_errors
def watch(
    run_: Annotated[str, typer.Argument(metavar="RUN", help="Run directory or run name.")],
    root: Annotated[
        Optional[Path], typer.Option("--root", help="Runs root for run names (default: ftui --root, or runs).")
    ] = None,
) -> None:
    """Open the live dashboard of a run."""
    from tui.commands.app_cmd import open_watch

    open_watch(run_, _root(root))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def ctl(
    run_: Annotated[str, typer.Argument(metavar="RUN", help="Run directory or run name.")],
    command: Annotated[str, typer.Argument(help="freeze, unfreeze, set-lr, pause, resume, stop, checkpoint, validate.")],
    args: Annotated[Optional[list[str]], typer.Argument(help="Arguments of the command.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the answer.")] = 30.0,
    root: Annotated[
        Optional[Path], typer.Option("--root", help="Runs root for run names (default: ftui --root, or runs).")
    ] = None,
) -> None:
    """Send a control command to a running run and wait for its answer."""
    from tui.commands.ctl_cmd import ctl_command

    raise typer.Exit(ctl_command(run_, command, list(args or []), timeout=timeout, root=_root(root)))


@app.command("eval")
@handles_errors
def eval_(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint file.")],
    config: Annotated[Optional[Path], typer.Option("--config", help="Config to take the data from (default: the checkpoint's).")] = None,
    split: Annotated[str, typer.Option("--split", help="val or test.")] = "test",
    set_: SetOption = None,
    trust_code: Annotated[bool, typer.Option("--trust-code", help="Import the model/data code the checkpoint names (only for code you trust).")] = False,
    base: Annotated[Optional[Path], typer.Option("--base", help="LoRA: the base weights file, when not where the checkpoint says.")] = None,
) -> None:
    """Evaluate a checkpoint: metrics, per-class report, confusion matrix."""
    from tui.commands.eval_cmd import eval_command

    eval_command(ckpt, config=config, split=split, overrides=list(set_ or []), trust_code=trust_code, base=base)


@app.command()
@handles_errors
def explain(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint file.")],
    method: Annotated[Optional[str], typer.Option("--method", help="gradcam, saliency, integrated_gradients (ig) or activations (default: gradcam for images, ig for tabular data).")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="Layer for gradcam/activations (default: the last conv or attention block; --list-layers shows them).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="How many samples to explain.")] = 16,
    mistakes: Annotated[bool, typer.Option("--mistakes", help="The samples with the highest loss (the worst mistakes).")] = False,
    class_: Annotated[Optional[str], typer.Option("--class", help="Only samples of this true class (name or index).")] = None,
    predicted: Annotated[Optional[str], typer.Option("--predicted", help="Only samples predicted as this class (with --class: one confusion-matrix cell).")] = None,
    target: Annotated[str, typer.Option("--target", help="Explain the predicted class (pred) or the true one (label).")] = "pred",
    split: Annotated[str, typer.Option("--split", help="val or test.")] = "test",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: <run>/explain/<checkpoint>-<split>-<method>...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary instead of the table.")] = False,
    list_layers: Annotated[bool, typer.Option("--list-layers", help="Print the layers gradcam/activations can use and exit.")] = False,
    app_: Annotated[bool, typer.Option("--app", help="Open the Explain view in the terminal instead of writing files.")] = False,
    trust_code: Annotated[bool, typer.Option("--trust-code", help="Import the model/data code the checkpoint names (only for code you trust).")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="Config to take the data from (default: the checkpoint's).")] = None,
    set_: SetOption = None,
) -> None:
    """Explain predictions: attribution maps (maps.npz), PNG grids and a table of the samples."""
    from tui.commands.explain_cmd import explain_command

    explain_command(
        ckpt, config=config, split=split, method=method, layer=layer, samples=samples, mistakes=mistakes,
        class_name=class_, predicted=predicted, target=target, out=out, as_json=as_json, list_layers=list_layers,
        overrides=list(set_ or []), app=app_, trust_code=trust_code,
    )


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


@app.command()
@handles_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="Checkpoint, weights file or sharded safetensors directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Print Rich tables instead of opening the app.")] = False,
    unsafe: Annotated[bool, typer.Option("--unsafe", help="Allow pickled code (only for files you trust).")] = False,
) -> None:
    """Look inside a checkpoint or weights file, safely."""
    from tui.commands.inspect_cmd import inspect_command

    inspect_command(path, as_json=as_json, plain=plain, unsafe=unsafe)


@app.command()
@handles_errors
def diff(
    a: Annotated[Path, typer.Argument(help="First checkpoint or weights file.")],
    b: Annotated[Path, typer.Argument(help="Second checkpoint or weights file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    unsafe: Annotated[bool, typer.Option("--unsafe", help="Allow pickled code (only for files you trust).")] = False,
) -> None:
    """Compare two checkpoints layer by layer."""
    from tui.commands.inspect_cmd import diff_command

    diff_command(a, b, as_json=as_json, unsafe=unsafe)


@app.command()
@handles_errors
def export(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint file.")],
    format_: Annotated[str, typer.Option("--format", help="safetensors, state_dict, onnx, or peft (a LoRA checkpoint's adapter directory).")] = "safetensors",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output path (default: beside the checkpoint).")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", min=7, help="onnx: ONNX opset (default: the newest both the exporter and the installed ONNX Runtime support).")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="LoRA: merge the adapters into plain weights (checked against the adapted model).")] = False,
    base: Annotated[Optional[Path], typer.Option("--base", help="LoRA: the base weights file, when not where the checkpoint says.")] = None,
    trust_code: Annotated[bool, typer.Option("--trust-code", help="onnx, LoRA: import the model code this checkpoint names (only for code you trust).")] = False,
) -> None:
    """Export a checkpoint's weights (safetensors, state dict) or its model (ONNX, verified in ONNX Runtime);
    LoRA checkpoints merged into plain weights (--merge) or as PEFT's adapter directory (--format peft)."""
    if format_ == "onnx":
        from tui.commands.compress_cmd import export_onnx_command

        export_onnx_command(ckpt, out=out, opset=opset, trust_code=trust_code)
        return
    if merge or format_ == "peft" or base is not None:
        from tui.commands.lora_cmd import export_lora_command

        export_lora_command(ckpt, format_=format_, out=out, merge=merge, base=base, trust_code=trust_code)
        return
    from tui.commands.inspect_cmd import export_command

    export_command(ckpt, format_=format_, out=out)


@app.command()
@handles_errors
def compress(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint file (runs/<name>/checkpoints/best.pt).")],
    prune: Annotated[Optional[float], typer.Option("--prune", help="Fraction to prune, in (0, 1): of each layer's channels (structured) or of all weights (unstructured).")] = None,
    prune_mode: Annotated[str, typer.Option("--prune-mode", help="structured (channels removed, tensors shrink; Torch-Pruning) or unstructured (weights zeroed; torch.nn.utils.prune).")] = "structured",
    quantize: Annotated[Optional[str], typer.Option("--quantize", help="int8: quantise with ONNX Runtime (the original and the pruned model).")] = None,
    quant_mode: Annotated[str, typer.Option("--quant-mode", help="auto (static for conv nets, dynamic otherwise), static (calibrated) or dynamic.")] = "auto",
    allow_float: Annotated[bool, typer.Option("--allow-float", help="Quantise what ONNX Runtime supports and keep the other layers float32.")] = False,
    calibration_samples: Annotated[int, typer.Option("--calibration-samples", help="Training samples that calibrate static int8.")] = 256,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", help="Fine-tune the pruned model N epochs, as a normal run (watch and steer it).")] = 0,
    finetune_set: Annotated[Optional[list[str]], typer.Option("--finetune-set", help="Override a key of the fine-tuning run's config: --finetune-set optim.lr=0.001 (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: runs/<name>/compressed).")] = None,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Export each float variant to ONNX (verified) and time it in ONNX Runtime.")] = True,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for every latency measurement (default: torch's).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=3, help="Timed runs per variant and batch size (median).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trade-off table as JSON.")] = False,
    trust_code: Annotated[bool, typer.Option("--trust-code", help="Import the model/data code this checkpoint names (only for code you trust).")] = False,
) -> None:
    """Prune and/or quantise a checkpoint; print the trade-off table (saved as tradeoff.json)."""
    from core.compress.pipeline import CompressOptions
    from tui.commands.compress_cmd import compress_command

    options = CompressOptions(
        prune=prune, prune_mode=prune_mode, quantize=quantize, quant_mode=quant_mode, allow_float=allow_float,
        calibration_samples=calibration_samples, finetune_epochs=finetune_epochs, finetune_set=list(finetune_set or []),
        out=out, onnx=onnx, threads=threads, repeats=repeats, trust_code=trust_code,
    )
    compress_command(ckpt, options, as_json=as_json)


# ---------------------------------------------------------------------------------------------
# Config, data, model
# ---------------------------------------------------------------------------------------------


@config_app.command("check")
@handles_errors
def config_check(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    set_: SetOption = None,
) -> None:
    """Validate a config."""
    from tui.commands.config_cmd import check

    check(config, list(set_ or []))


@config_app.command("show")
@handles_errors
def config_show(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    set_: SetOption = None,
) -> None:
    """Print the resolved config (defaults and overrides applied) as YAML."""
    from tui.commands.config_cmd import show

    show(config, list(set_ or []))


@config_app.command("schema")
@handles_errors
def config_schema_cmd(
    out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the config's JSON Schema (for editors' YAML language servers)."""
    from tui.commands.config_cmd import schema

    schema(out)


@data_app.command("preview")
@handles_errors
def data_preview(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    split: Annotated[str, typer.Option("--split", help="train or val.")] = "train",
    n: Annotated[int, typer.Option("--n", min=1, max=256, help="Number of samples to draw.")] = 16,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for the samples drawn (default: run.seed).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the samples as a PNG picture (e.g. preview.png).")] = None,
    set_: SetOption = None,
) -> None:
    """Dataset statistics and augmented samples drawn in the terminal."""
    from tui.commands.data_cmd import preview

    preview(config, split=split, n=n, seed=seed, out=out, overrides=list(set_ or []))


@model_app.command("show")
@handles_errors
def model_show(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    depth: Annotated[int, typer.Option("--depth", min=1, help="Tree depth to print.")] = 2,
    set_: SetOption = None,
) -> None:
    """Print the model's layer tree with parameter counts and output shapes."""
    from tui.commands.model_cmd import show

    show(config, depth=depth, overrides=list(set_ or []))


@model_app.command("graph")
@handles_errors
def model_graph(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    format_: Annotated[str, typer.Option("--format", help="mermaid.")] = "mermaid",
    depth: Annotated[int, typer.Option("--depth", min=1, help="Tree depth to draw.")] = 1,
    set_: SetOption = None,
) -> None:
    """Print a graph of the model's top levels (Mermaid flowchart)."""
    from tui.commands.model_cmd import graph

    graph(config, format_=format_, depth=depth, overrides=list(set_ or []))


# ---------------------------------------------------------------------------------------------
# Many runs: manage, compare, sweep
# ---------------------------------------------------------------------------------------------

RootOption = Annotated[Optional[Path], typer.Option("--root", help="Runs root (default: ftui --root, or runs).")]
RunsArg = Annotated[list[str], typer.Argument(metavar="RUN...", help="Run names or directories.")]


@app.command()
@handles_errors
def compare(
    runs: Annotated[list[str], typer.Argument(metavar="RUN RUN...", help="Two or more run names or directories.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    root: RootOption = None,
) -> None:
    """Compare runs: final metrics and the config keys that differ (the app's c key overlays their curves)."""
    from tui.commands.compare_cmd import compare_command

    raise typer.Exit(compare_command(runs, _root(root), as_json=as_json))


@app.command()
@handles_errors
def sweep(
    config: Annotated[Path, typer.Argument(help="Config YAML file.")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="A searched key: KEY=loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH[:STEP], logint:LOW:HIGH or choice:A,B,C (repeatable).")],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Trials in the study (all workers together).")] = 20,
    parallel: Annotated[int, typer.Option("--parallel", "-j", min=1, help="Trials trained at once by this process.")] = 1,
    set_: SetOption = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna RDB storage URL (default: sqlite file RUNS_ROOT/sweeps/NAME.db); the same URL on many machines shares the study.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Study name (default: RUN_NAME-sweep); the same name resumes or joins it.")] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, random, grid, qmc or gp, with options as name:key=value,...")] = "tpe",
    pruner: Annotated[str, typer.Option("--pruner", help="median, percentile, hyperband, successive_halving, threshold or none, with options as name:key=value,...")] = "median",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the sampler.")] = None,
    root: Annotated[Optional[Path], typer.Option("--root", help="Runs root for the trials (default: the config's run.root).")] = None,
) -> None:
    """Search hyper-parameters with Optuna; each trial is an ordinary run (watch it, steer it)."""
    from tui.commands.sweep_cmd import sweep_command

    raise typer.Exit(sweep_command(config, list(param), trials=trials, parallel=parallel, overrides=list(set_ or []),
                                   storage=storage, name=name, sampler=sampler, pruner=pruner, seed=seed,
                                   root=root if root is not None else _STATE["root"]))


@runs_app.command("ls")
@handles_errors
def runs_ls(
    filter_: Annotated[str, typer.Option("--filter", "-f", help="Filter: words, key=value, key>value (see docs/runs.md).")] = "",
    sort: Annotated[Optional[str], typer.Option("--sort", help="Sort by a column (name, status, best, duration, started...) or a config key.")] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending.")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include archived runs.")] = False,
    trash: Annotated[bool, typer.Option("--trash", help="List the deleted runs in the trash instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    root: RootOption = None,
) -> None:
    """List runs with status, progress, best metric, duration and the config keys that differ."""
    from tui.commands.runs_cmd import ls_command

    ls_command(_root(root), query=filter_, sort=sort, reverse=desc, show_all=all_, as_json=as_json, trash=trash)


@runs_app.command("rm")
@handles_errors
def runs_rm(
    runs: RunsArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    root: RootOption = None,
) -> None:
    """Delete runs: move them to RUNS_ROOT/.trash (never a running run)."""
    from tui.commands.runs_cmd import rm_command

    raise typer.Exit(rm_command(runs, _root(root), yes=yes))


@runs_app.command("restore")
@handles_errors
def runs_restore(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Names in the trash (ftui runs ls --trash).")],
    root: RootOption = None,
) -> None:
    """Move deleted runs back from the trash."""
    from tui.commands.runs_cmd import restore_command

    restore_command(names, _root(root))


@runs_app.command("mv")
@handles_errors
def runs_mv(
    run_: Annotated[str, typer.Argument(metavar="RUN", help="Run name or directory.")],
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="The new name.")],
    root: RootOption = None,
) -> None:
    """Rename a run (never a running one)."""
    from tui.commands.runs_cmd import mv_command

    mv_command(run_, new_name, _root(root))


@runs_app.command("tag")
@handles_errors
def runs_tag(
    run_: Annotated[str, typer.Argument(metavar="RUN", help="Run name or directory.")],
    tags: Annotated[Optional[list[str]], typer.Argument(metavar="TAG...", help="Tags to add.")] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", "-r", help="A tag to remove (repeatable).")] = None,
    root: RootOption = None,
) -> None:
    """Add or remove tags of a run."""
    from tui.commands.runs_cmd import tag_command

    tag_command(run_, list(tags or []), list(remove or []), _root(root))


@runs_app.command("note")
@handles_errors
def runs_note(
    run_: Annotated[str, typer.Argument(metavar="RUN", help="Run name or directory.")],
    text: Annotated[str, typer.Argument(help="The note (\"\" clears it).")],
    root: RootOption = None,
) -> None:
    """Set a run's notes."""
    from tui.commands.runs_cmd import note_command

    note_command(run_, text, _root(root))


@runs_app.command("archive")
@handles_errors
def runs_archive(runs: RunsArg, root: RootOption = None) -> None:
    """Hide runs from listings (ls --all and the app's A key show them); nothing moves."""
    from tui.commands.runs_cmd import archive_command

    archive_command(runs, _root(root), archived=True)


@runs_app.command("unarchive")
@handles_errors
def runs_unarchive(runs: RunsArg, root: RootOption = None) -> None:
    """Show archived runs in listings again."""
    from tui.commands.runs_cmd import archive_command

    archive_command(runs, _root(root), archived=False)


def main() -> None:
    """Console-script entry point."""
    if "--debug" in sys.argv[1:]:
        _STATE["debug"] = True
    try:
        app()
    except SystemExit as exc:
        _exit_quietly_on_interrupt(exc.code if isinstance(exc.code, int) else 1)
        raise
    _exit_quietly_on_interrupt(0)


def _exit_quietly_on_interrupt(code: int) -> None:
    """From here on the command's outcome is decided and recorded; what is left is the interpreter's
    shutdown (atexit handlers joining data-loader workers and writer threads). A Ctrl-C now would
    print a KeyboardInterrupt traceback from inside one of them, or kill the process with -2: end
    at once with the decided code instead."""
    import signal

    def leave(signum: int, frame: Any) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    try:
        signal.signal(signal.SIGINT, leave)
        signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread (an embedding host): nothing to do
        pass


if __name__ == "__main__":
    main()
