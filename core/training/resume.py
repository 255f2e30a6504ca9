"""Checking a resume before it touches the run.

``ftui run --resume`` continues a run's directory in place, with the run's own ``config.yaml`` unless a
CONFIG is given. A resume may change what only decides how long and how it goes on
(:data:`SAFE_ON_RESUME`: epochs, steps, time, learning rates, early stopping, logging, checkpoints,
devices); anything else would change the model, the data or the optimizer's layout under a run that
was trained with others, so :func:`check_resume` refuses it, listing the keys, before anything is
written. It also refuses a config that cannot continue the checkpoint at all (another model size,
other fine-tuning groups), from the checkpoint and the config alone (no data is built), and the
trainer calls it before it opens the run directory. The changes it lets through are recorded by the
trainer (an event, ``run.json``'s ``config_changes`` and the rewritten ``config.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import RunError

#: Config keys (and sections, by prefix) a resume may change: they decide how long and how the run
#: goes on, never what the model, the data or the optimizer's groups are. ``optim.lr`` and
#: ``finetune.head_lr`` move the groups still at the rate the config gave them (not those changed since).
SAFE_ON_RESUME = (
    "trainer.epochs", "trainer.max_steps", "trainer.max_time", "trainer.early_stopping",
    "trainer.val_every_n_epochs", "trainer.on_nonfinite", "trainer.gradient_clip_val",
    "trainer.checkpoint.save_last", "trainer.checkpoint.save_best", "trainer.checkpoint.every_n_epochs",
    "trainer.checkpoint.every_n_steps", "trainer.device", "trainer.devices", "trainer.cpu_threads",
    "trainer.compile", "trainer.channels_last", "trainer.cudnn_benchmark", "trainer.steady_malloc",
    "optim.lr", "finetune.head_lr", "schedule.warmup_epochs", "schedule.min_lr_ratio", "schedule.patience",
    "data.num_workers", "logging", "run.notes",
)


#: Keys that are no change of the run: where its directory is, and how a process prints.
IGNORED_ON_RESUME = ("run.name", "run.root", "logging.progress")


def safe_on_resume(key: str) -> bool:
    """Whether a resume may change the dotted config ``key`` (see :data:`SAFE_ON_RESUME`)."""
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_ON_RESUME)


def config_changes(saved: dict[str, Any] | None, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose value differs between a checkpoint's config and ``cfg``: ``{key: (saved, now)}``.

    ``run.name`` and ``run.root`` are left out (a run directory may be moved or renamed), and so is
    ``logging.progress`` (how this process prints, which ``--quiet`` or a detached start decide).
    """
    if not isinstance(saved, dict):
        return {}
    try:
        # through today's schema: a key added to ftui since the run started is its default on both sides
        saved = type(cfg).model_validate(saved).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - a config of another version: compare it as written
        pass
    before, after = _flatten(saved), _flatten(cfg.model_dump(mode="json"))
    changed = {}
    for key in sorted(set(before) | set(after)):
        if key in IGNORED_ON_RESUME:
            continue
        if before.get(key, _MISSING) != after.get(key, _MISSING):
            changed[key] = (before.get(key), after.get(key))
    return changed


def check_resume(
    cfg: Config, ckpt: dict[str, Any], *, source: Path | str, model_given: bool = False
) -> dict[str, tuple[Any, Any]]:
    """Raise :class:`RunError` when ``cfg`` cannot continue ``ckpt``; return the changed keys otherwise.

    Builds the config's model on the CPU for the checkpoint's classes and input shape and loads the
    checkpoint's weights, fine-tuning state and optimizer state into it, exactly as the resume will.
    A model that needs more than that to be built — the user's own code (it may ask for facts only
    the data knows), a model object given from Python (``model_given``), named inputs — is left to
    the resume itself, which still refuses before it writes anything (the recorder keeps a refused
    resume off the record).
    """
    import torch

    from core.finetune import FineTuner
    from core.models import build_model
    from core.usercode import is_code_name, is_object_name

    changes = config_changes(ckpt.get("config"), cfg)
    unsafe = [key for key in changes if not safe_on_resume(key)]
    if unsafe:
        shown = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in unsafe[:8])
        more = f" (and {len(unsafe) - 8} more)" if len(unsafe) > 8 else ""
        run = Path(source).parent.parent if Path(source).suffix == ".pt" else Path(source)
        raise RunError(
            f"--resume {source}: the config would change the model, the data or the optimizer's layout of a run "
            f"trained with others: {shown}{more}. Nothing was written to the run. Fix: resume with the run's own "
            f"config (`ftui run --resume {run}`), with --set only on what a resume may change ("
            "trainer.epochs, trainer.max_steps, optim.lr, logging.*, ...; docs/run-format.md); to train a changed "
            "model or data, start a new run from these weights (model.weights)."
        )
    data = ckpt.get("data") or {}
    classes, shape = data.get("class_names"), data.get("input_shape")
    if not isinstance(classes, list) or not classes or not isinstance(shape, list) or not all(
        isinstance(s, int) for s in shape
    ):
        return changes  # an older checkpoint, or named inputs: the resume itself will tell
    if model_given or is_code_name(cfg.model.name) or is_object_name(cfg.model.name):
        return changes
    with torch.device("cpu"):
        built = build_model(cfg.model.model_copy(update={"weights": None}), len(classes), tuple(int(s) for s in shape),
                            head_dropout=cfg.finetune.head_dropout)
    try:
        if isinstance(ckpt.get("lora"), dict) or cfg.finetune.lora is not None:
            _check_lora(cfg, ckpt, built, source)
        else:
            built.model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        raise RunError(_refusal(source, "its weights do not fit this config's model", exc, changes, "model.",
                                "finetune.lora")) from None
    tuner = FineTuner(built.model, cfg.finetune, cfg.optim, built.head_path)
    tuner.setup()
    try:
        if ckpt.get("finetune"):
            tuner.load_state_dict(ckpt["finetune"])
        optimizer = tuner.build_optimizer()
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise RunError(
            _refusal(source, "its optimizer state does not fit this config's parameter groups", exc, changes,
                     "finetune.", "optim.")
        ) from None
    return changes


def _check_lora(cfg: Config, ckpt: dict[str, Any], built: Any, source: Path | str) -> None:
    """A LoRA checkpoint: the config's adapters on the config's model take its tensors, and the base
    file it leaves the rest to is there and unchanged (``core.lora.base.locate``). Raises RuntimeError
    (turned into the refusal) when the tensors do not fit."""
    from core.lora.adapters import apply_lora
    from core.lora.base import locate
    from core.lora.names import is_adapter, needs_base

    if cfg.finetune.lora is None:
        raise RuntimeError("the checkpoint holds LoRA adapters, but this config has no finetune.lora")
    if not isinstance(ckpt.get("lora"), dict):
        raise RuntimeError("this config adds LoRA adapters, which the checkpoint does not hold")
    apply_lora(built.model, cfg.finetune.lora, built.head_path)
    own, state = built.model.state_dict(), ckpt["model"]
    extra = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    left = {n for n, _ in built.model.named_parameters() if not is_adapter(n)} if needs_base(ckpt) else set()
    absent = [k for k in own if k not in state and k not in left]
    if extra or wrong or absent:
        shown = (f"unexpected {extra[0]}" if extra else f"{wrong[0]} has another shape" if wrong else f"missing {absent[0]}")
        raise RuntimeError(f"LoRA tensors do not fit: {shown}")
    if needs_base(ckpt):
        locate(ckpt["lora"]["base"], cfg.model.weights, checkpoint=source)  # the base file, before the run is touched
    built.model.load_state_dict(state, strict=False)


def _refusal(source: Path | str, what: str, exc: BaseException, changes: dict[str, tuple[Any, Any]],
             *prefixes: str) -> str:
    relevant = [k for k in changes if k.startswith(prefixes)] or list(changes)
    shown = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in relevant[:5])
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return (
        f"--resume {source}: {what} ({detail}). "
        + (f"Changed since the run started: {shown}. " if shown else "")
        + "Nothing was written to the run. Fix: resume with the run's own config.yaml and without --set on those keys; "
        "to train a changed model, start a new run from these weights (model.weights)."
    )


_MISSING = object()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}
