"""The Python API behind the ``ftui`` module: train and evaluate from scripts and notebooks.

``run`` is ``ftui run`` in Python, plus objects: a model (an ``nn.Module`` or a callable that builds
one), data (the splits, or a callable that returns them) and extra callbacks. It trains in this
process and records the same run directory as the command — so ``ftui watch``, ``ftui ctl``, the app,
``ftui inspect`` and ``--resume`` work on it. ``evaluate`` is ``ftui eval``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.config import Config, config_from_dict, load_config, validate_config
from core.usercode import object_name


@dataclass
class RunResult:
    """What ``ftui.run`` returns once training ended (finished, stopped or interrupted).

    Attributes:
        path: the run directory (None with ``record=False``).
        name: the run's name.
        status: ``finished``, ``stopped`` or ``interrupted``.
        exit_code: what ``ftui run`` would exit with.
        best: ``{"metric", "value", "epoch", "step"}`` of the best checkpoint, or None.
        metrics: the last logged figures (``val/acc``, ``train/loss``...).
        checkpoints: ``{"best": path, "last": path}`` of the files that exist.
        trainer: the :class:`core.training.Trainer` (model, data, history...).
    """

    path: Path | None
    name: str
    status: str
    exit_code: int
    best: dict[str, Any] | None
    metrics: dict[str, float]
    checkpoints: dict[str, Path] = field(default_factory=dict)
    trainer: Any = None


def resolve_config(config: Config | dict | str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """A Config from a path, a dict, a Config (copied) or None (the defaults), with overrides."""
    overrides = list(overrides)
    if config is None:
        return config_from_dict({}, overrides)
    if isinstance(config, Config):
        return config_from_dict(config.model_dump(mode="json"), overrides)
    if isinstance(config, dict):
        return config_from_dict(config, overrides)
    return load_config(config, overrides)


def with_objects(cfg: Config, model: Any, data: Any) -> Config:
    """The config with ``model.name`` / ``data.source`` recording Python objects (validated again)."""
    if model is None and data is None:
        return cfg
    raw = cfg.model_dump(mode="json")
    if model is not None:
        raw["model"]["name"] = object_name(model)
    if data is not None:
        raw["data"]["source"] = object_name(data)
    return validate_config(raw, source="ftui.run()")


def run(
    config: Config | dict | str | Path | None = None,
    *,
    model: Any = None,
    data: Any = None,
    callbacks: Iterable[Any] = (),
    overrides: Iterable[str] = (),
    name: str | None = None,
    root: str | Path | None = None,
    resume: str | Path | None = None,
    record: bool = True,
) -> RunResult:
    """Train as ``ftui run`` does, in this process, with optional objects in place of config names.

    Args:
        config: a config file, a dict, a :class:`Config`, or None for the defaults.
        model: an ``nn.Module``, or a callable returning one that receives ``model.kwargs`` and the data
            facts it names (``num_classes``, ``input_shape``, ``class_names``, the data's meta keys).
        data: the splits — a dict or object with ``train``, ``val``, optional ``test``, and
            ``class_names`` (or ``num_classes``) and ``meta`` — or a callable returning them
            (``DataSplits`` is such an object).
        callbacks: extra :class:`core.training.Callback` objects, called after ftui's own.
        overrides: ``--set`` style overrides, e.g. ``["trainer.epochs=3"]``.
        name: the run's name (default: the config's run.name or file stem).
        root: the folder of run directories (default: the config's run.root, ``runs``).
        resume: a run (name or directory) to continue from its ``last.pt``; pass the same model/data.
        record: False trains without a run directory (no checkpoints, no control channel).

    Raises:
        UserError (exit-2 errors of the CLI): bad config, code, data or model; TrainingFailed.
    """
    from core.runs import resolve_run
    from core.training.trainer import Trainer

    cfg = with_objects(resolve_config(config, overrides), model, data)
    if name:
        cfg.run.name = name
    if root is not None:
        cfg.run.root = str(root)
    run_dir, ckpt = None, None
    if resume is not None:
        run_dir = resolve_run(str(resume), cfg.run.root)
        ckpt = run_dir / "checkpoints" / "last.pt"
        cfg.run.name = run_dir.name
    trainer = Trainer(cfg, callbacks=list(callbacks), run_dir=run_dir, record=record, model=model, data=data)
    trainer.fit(resume_from=ckpt)
    path = trainer.run.path if trainer.run is not None else trainer.run_dir
    checkpoints = {}
    if path is not None:
        for key in ("best", "last"):
            file = Path(path) / "checkpoints" / f"{key}.pt"
            if file.is_file():
                checkpoints[key] = file.resolve()
    return RunResult(
        path=Path(path).resolve() if path is not None else None,
        name=trainer.run.name if trainer.run is not None else str(cfg.run.name),
        status=trainer.status,
        exit_code=trainer.exit_code,
        best=trainer.best,
        metrics=dict(trainer.callback_metrics),
        checkpoints=checkpoints,
        trainer=trainer,
    )


def evaluate(
    checkpoint: str | Path,
    *,
    split: str = "test",
    config: str | Path | None = None,
    overrides: Iterable[str] = (),
    model: Any = None,
    data: Any = None,
    trust_code: bool = False,
) -> Any:
    """Evaluate a checkpoint as ``ftui eval`` does; pass ``model``/``data`` for runs that trained on objects.

    Returns a :class:`core.training.evaluate.Evaluation` (``metrics``, ``class_names``...). A checkpoint
    whose config names your code is rebuilt only with ``trust_code=True`` or a ``config``.
    """
    from core.training.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, config=config, split=split, overrides=list(overrides),
                               trust_code=trust_code, model=model, data=data)
