"""The run configuration: typed pydantic models, YAML loading, dotted overrides, JSON Schema.

A config file is YAML with the sections ``run``, ``data``, ``model``, ``finetune``, ``optim``,
``schedule``, ``trainer`` and ``logging``. Every section and key is optional (defaults train
``simple_cnn`` on the built-in ``shapes`` data); unknown keys are errors. Relative paths inside a
config are relative to the current working directory, like every other path given to ``ftui``.

This module imports neither torch nor Textual: ``ftui config check`` stays fast.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError, UserError
from core.usercode import CODE_KEYS, absolute_name, is_code_name, is_object_name, parse_name

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    # allow_inf_nan=False: `optim.lr: .inf` or `nan` is never a meaningful setting, and would only
    # surface later as a diverged run.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False)


Probability = float
Range = tuple[float, float]


def _area_range(v: Range, name: str) -> Range:
    if not (0 < v[0] <= v[1] <= 1):
        raise ValueError(f"{name} must be [low, high] with 0 < low <= high <= 1")
    return v


def _positive_range(v: Range, name: str) -> Range:
    if not (0 < v[0] <= v[1]):
        raise ValueError(f"{name} must be [low, high] with 0 < low <= high")
    return v


AreaRange = Annotated[Range, AfterValidator(lambda v: _area_range(v, "scale"))]
RatioRange = Annotated[Range, AfterValidator(lambda v: _positive_range(v, "ratio"))]


RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class RunConfig(Section):
    """Where the run is recorded and how it is seeded."""

    name: str | None = Field(
        None,
        description="Run name; the directory is <root>/<name> (a suffix is added if it exists). "
        "Default: the config file's stem.",
        pattern=RUN_NAME_PATTERN,
    )
    root: str = Field("runs", description="Directory that holds run directories.")
    seed: int = Field(0, ge=0, description="Seeds Python, NumPy and torch (every rank gets seed + rank).")
    notes: str = Field("", description="Free text stored with the run.")


SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring", "star",
    "pentagon", "hexagon", "diamond", "ellipse", "arrow", "heart",
)


class ShapesConfig(Section):
    """The built-in procedural shapes dataset."""

    classes: list[str] = Field(
        default_factory=lambda: ["circle", "square", "triangle", "cross", "ring", "star"],
        min_length=2,
        description="Shape classes to draw (circle, square, triangle, cross, ring, star, "
        "pentagon, hexagon, diamond, ellipse, arrow, heart).",
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in SHAPE_CLASSES]
        if unknown:
            raise ValueError(f"unknown shape class(es) {unknown}; choose from {', '.join(SHAPE_CLASSES)}")
        if len(set(v)) != len(v):
            raise ValueError("each class may be listed once")
        return v
    image_size: int = Field(32, ge=8, le=512, description="Side of the generated RGB images in pixels.")
    difficulty: float = Field(
        0.5, ge=0.0, le=1.0, description="0 = clean centred shapes, 1 = small, cluttered, noisy shapes."
    )
    train_size: int = Field(20000, ge=1, description="Number of training samples (generated per index).")
    val_size: int = Field(2000, ge=1, description="Number of validation samples.")
    test_size: int = Field(2000, ge=0, description="Number of test samples (0 = no test split).")


class NormalizeStats(Section):
    """Explicit per-channel normalisation statistics."""

    mean: list[float] = Field(description="Per-channel mean (in [0, 1] pixel units).")
    std: list[float] = Field(description="Per-channel standard deviation (> 0).")

    @model_validator(mode="after")
    def _same_length(self) -> NormalizeStats:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("mean and std must be non-empty lists of the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("every std must be > 0")
        return self


class RotationAug(Section):
    """Random rotation."""

    degrees: float = Field(15.0, ge=0, le=180, description="Rotate by up to ±degrees.")
    p: Probability = Field(1.0, ge=0, le=1, description="Probability of applying it.")


class ResizedCropAug(Section):
    """Random resized crop back to the input size."""

    scale: AreaRange = Field((0.8, 1.0), description="Area fraction range of the crop, within (0, 1].")
    ratio: RatioRange = Field((0.75, 1.3333), description="Aspect-ratio range of the crop.")
    p: Probability = Field(1.0, ge=0, le=1, description="Probability of applying it.")


class ColorJitterAug(Section):
    """Random brightness, contrast, saturation and hue."""

    brightness: float = Field(0.2, ge=0, description="Brightness factor range ±.")
    contrast: float = Field(0.2, ge=0, description="Contrast factor range ±.")
    saturation: float = Field(0.2, ge=0, description="Saturation factor range ±.")
    hue: float = Field(0.0, ge=0, le=0.5, description="Hue shift range ±, at most 0.5.")
    p: Probability = Field(1.0, ge=0, le=1, description="Probability of applying it.")


class RandomErasingAug(Section):
    """Random erasing of a rectangle (after normalisation)."""

    p: Probability = Field(0.25, ge=0, le=1, description="Probability of erasing.")
    scale: AreaRange = Field((0.02, 0.2), description="Erased area fraction range, within (0, 1].")
    ratio: RatioRange = Field((0.3, 3.3), description="Aspect-ratio range of the erased area.")


class AffineAug(Section):
    """Pixel-value affine ``x * scale + offset`` with random ranges (on [0, 1] pixel values)."""

    scale: Range = Field((0.9, 1.1), description="Multiplier range.")
    offset: Range = Field((-0.05, 0.05), description="Offset range.")
    p: Probability = Field(1.0, ge=0, le=1, description="Probability of applying it.")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: Range) -> Range:
        if not (0 <= v[0] <= v[1]):
            raise ValueError("scale must be [low, high] with 0 <= low <= high")
        return v

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: Range) -> Range:
        if not (v[0] <= v[1]):
            raise ValueError("offset must be [low, high] with low <= high")
        return v


class AugmentConfig(Section):
    """Train-only augmentation (validation and test are deterministic). Omit a key to turn it off."""

    hflip: Probability = Field(0.0, ge=0, le=1, description="Probability of a horizontal flip.")
    vflip: Probability = Field(0.0, ge=0, le=1, description="Probability of a vertical flip.")
    rotation: RotationAug | None = Field(None, description="Random rotation.")
    random_resized_crop: ResizedCropAug | None = Field(None, description="Random resized crop.")
    color_jitter: ColorJitterAug | None = Field(None, description="Colour jitter.")
    random_erasing: RandomErasingAug | None = Field(None, description="Random erasing.")
    affine: AffineAug | None = Field(None, description="Pixel-value affine x*scale+offset.")


class OutlierConfig(Section):
    """Outlier handling for tabular data (statistics fitted on the training split)."""

    method: Literal["none", "zscore", "iqr", "range"] = Field("none", description="How outliers are found.")
    threshold: float = Field(3.0, gt=0, description="z-score threshold, or IQR multiplier (1.5 is usual).")
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Per-column allowed [low, high], for method 'range'."
    )
    action: Literal["drop", "clip"] = Field(
        "clip", description="Drop outlier training rows (validation/test values are clipped) or clip every split."
    )

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = [k for k, (lo, hi) in v.items() if not lo <= hi]
        if bad:
            raise ValueError(f"each range must be [low, high] with low <= high (not so for {', '.join(bad)})")
        return v


class BoxCoxSpec(Section):
    """Box-Cox transform with a given lambda (omit lmbda to fit it on the training split)."""

    boxcox: float | None = Field(None, description="Lambda; null fits it on the training split.")


class CsvConfig(Section):
    """Tabular classification from a CSV file."""

    path: str | None = Field(None, description="CSV file path.")
    target: str | None = Field(None, description="Target (label) column.")
    features: list[str] | None = Field(None, description="Feature columns (default: all but the target).")
    categorical: list[str] = Field(default_factory=list, description="Columns to one-hot encode.")
    missing: Literal["drop", "mean", "median", "ffill", "constant"] = Field(
        "drop", description="How missing values are handled."
    )
    fill_value: float = Field(0.0, description="Value used when missing is 'constant'.")
    outliers: OutlierConfig = Field(default_factory=OutlierConfig, description="Outlier handling.")
    drop_duplicates: bool = Field(True, description="Drop duplicate rows.")
    scaling: Literal["none", "zscore", "minmax"] = Field("zscore", description="Feature scaling.")
    transforms: dict[str, Union[Literal["log1p", "boxcox"], BoxCoxSpec]] = Field(
        default_factory=dict,
        description="Per-column transform applied before scaling: 'log1p', 'boxcox' or {boxcox: lambda}.",
    )


def _check_code_name(value: str, key: str) -> None:
    """A pydantic-friendly check of a code name's form (pydantic reports ValueErrors only)."""
    try:
        parse_name(value, key=key)
    except UserError as exc:
        raise ValueError(str(exc).removeprefix(f"{key}: ")) from None


DATA_SOURCES: tuple[str, ...] = (
    "shapes", "cifar10", "cifar100", "mnist", "fashion_mnist", "imagefolder", "digits", "csv",
)
CODE_NAME_PATTERN = r"^.+:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class DataConfig(Section):
    """The dataset, its preprocessing and augmentation, and the loaders."""

    source: str = Field(
        "shapes",
        description="Dataset source: shapes, cifar10, cifar100, mnist, fashion_mnist, imagefolder, digits, csv, or "
        "your code: FILE.py:NAME (relative to this config file, e.g. ./data.py:make_data) or MODULE:NAME naming a "
        "callable that returns the splits (train, val, optional test) and class_names.",
        json_schema_extra={"anyOf": [{"enum": list(DATA_SOURCES)}, {"pattern": CODE_NAME_PATTERN}]},
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of your data callable (data.source: FILE.py:NAME); it also receives 'seed' "
        "when its signature names it.",
    )
    collate: str | None = Field(
        None,
        description="Your collate function, FILE.py:NAME or MODULE:NAME: a list of (inputs, label) items -> "
        "(inputs, labels) batch (default: torch's, which stacks tensors, tuples and dicts of tensors).",
    )
    root: str | None = Field(
        None, description="Directory of the dataset files (torchvision sets, imagefolder)."
    )
    download: bool = Field(False, description="Allow torchvision to download the dataset into root.")
    shapes: ShapesConfig = Field(default_factory=ShapesConfig, description="Options of the shapes source.")
    csv: CsvConfig = Field(default_factory=CsvConfig, description="Options of the csv source.")
    image_size: int | None = Field(
        None, ge=8, le=1024, description="Resize/centre-crop images to this side (default: native size)."
    )
    channels: Literal[1, 3] | None = Field(
        None, description="Convert images to 1 or 3 channels (default: the source's own)."
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="Validation fraction when the source has no validation split."
    )
    test_fraction: float = Field(
        0.0, ge=0, lt=1, description="Test fraction carved from training data when the source has no test split."
    )
    normalize: Union[Literal["auto", "none", "imagenet"], NormalizeStats] = Field(
        "auto",
        description="'auto' computes per-channel statistics on the training split; 'imagenet'; "
        "'none'; or {mean: [...], std: [...]}.",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Train-only augmentation.")
    batch_size: int = Field(64, ge=1, description="Training batch size (per process).")
    eval_batch_size: int | None = Field(None, ge=1, description="Validation/test batch size (default: batch_size).")
    num_workers: Union[int, Literal["auto"]] = Field(
        "auto",
        description="DataLoader workers per process: a number >= 0, or 'auto' (the cores less one per training "
        "process, shared among the node's processes (LOCAL_WORLD_SIZE), capped at 8; 0 for one process with two "
        "cores or fewer, where the training step already uses both).",
    )
    pin_memory: Union[bool, Literal["auto"]] = Field("auto", description="Pin host memory ('auto': when CUDA).")
    persistent_workers: bool = Field(True, description="Keep workers alive between epochs (when workers > 0).")
    prefetch_factor: int = Field(2, ge=1, description="Batches prefetched per worker (when workers > 0).")
    drop_last: bool = Field(True, description="Drop the last incomplete training batch.")

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("num_workers must be >= 0 or 'auto'")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        v = v.strip()
        if v in DATA_SOURCES or is_object_name(v):
            return v
        if is_code_name(v):
            _check_code_name(v, "data.source")
            return v
        close = difflib.get_close_matches(v, DATA_SOURCES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(
            f"unknown source '{v}'; {hint}use one of {', '.join(DATA_SOURCES)}, or your own code as FILE.py:NAME "
            "(e.g. ./data.py:make_data)"
        )

    @field_validator("collate")
    @classmethod
    def _collate(cls, v: str | None) -> str | None:
        if v is not None and not is_object_name(v):
            _check_code_name(v, "data.collate")
        return v

    @model_validator(mode="after")
    def _code_source_options(self) -> DataConfig:
        code = is_code_name(self.source) or is_object_name(self.source)
        if self.kwargs and not code:
            raise ValueError("data.kwargs applies to a data.source given as code (FILE.py:NAME); remove it")
        if code:
            image_only = [k for k in ("image_size", "channels") if getattr(self, k) is not None]
            image_only += ["augment"] if self.augment != AugmentConfig() else []
            image_only += ["normalize"] if self.normalize != "auto" else []
            if image_only:
                raise ValueError(
                    f"{', '.join('data.' + k for k in image_only)} configure ftui's own image sources; a data.source "
                    "given as code does its own transforms. Fix: remove them, or apply them in your dataset"
                )
        return self


class LayerPattern(Section):
    """Selects the last N blocks of the model, counted from the head backwards, the head included.

    Blocks are the top-level children that hold parameters, in registration order; the head is one
    block of its own even when nested (``classifier.3``), and a model's trunk container (``features``,
    ``encoder``, ``encoder.layers``, ``encoder.layer``, ``trunk_output``, ``blocks``, ``layers``) is expanded
    into its children, so ``{last: 3}`` is
    ``layer3, layer4, fc`` on a ResNet and ``features.12, classifier.0, classifier.3`` on a MobileNet V3.
    """

    last: int = Field(
        ge=1,
        description="Number of blocks counted from the head backwards, the head included: {last: 1} is the "
        "head, {last: 3} on a ResNet is fc, layer4 and layer3. Trunk containers (features, encoder.layers, blocks, layers) "
        "count per child.",
    )


Pattern = Union[str, LayerPattern]


class LrGroup(Section):
    """An explicit learning-rate group."""

    match: str = Field(description="Module path pattern (glob, e.g. 'layer4' or 'features.*').")
    lr: float = Field(gt=0, description="Learning rate of the matched parameters.")
    weight_decay: float | None = Field(None, ge=0, description="Weight decay (default: optim.weight_decay).")


class UnfreezeStep(Section):
    """One step of a gradual unfreezing schedule."""

    epoch: int = Field(ge=0, description="Epoch (0-based) at whose start the modules are unfrozen.")
    unfreeze: Union[Pattern, list[Pattern]] = Field(description="Pattern(s) to unfreeze.")
    lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the newly unfrozen parameters (they move to group 'unfrozen:<pattern>'; "
        "default: the lr of their configured group).",
    )


class LoraConfig(Section):
    """LoRA adapters (Hugging Face PEFT, ``pip install 'ftui[lora]'``): a trainable low-rank update
    beside each targeted layer, whose own weights are frozen. See docs/lora.md."""

    target: list[Pattern] = Field(
        min_length=1,
        description="Patterns of the layers to adapt, in the language of finetune.freeze: module paths or globs "
        "('encoder', 'layer4.*', '*.mlp.*'), 'backbone', {last: N}. Every Linear, Conv1d/2d/3d (groups=1), "
        "Embedding and MultiheadAttention inside what a pattern selects gets an adapter; the head and "
        "modules_to_save never do. A pattern that matches nothing, or nothing adaptable, is an error.",
    )
    rank: int = Field(8, ge=1, description="Rank r of each adapter (its update is B @ A, with A r x in and B out x r); "
                      "at most min(in, out) of the smallest targeted layer.")
    alpha: float | None = Field(
        None, gt=0, description="Scale numerator: the update is multiplied by alpha / rank (default: alpha = rank, "
        "a scale of 1)."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input during training.")
    modules_to_save: list[Pattern] = Field(
        default_factory=lambda: ["head"],
        description="Modules that train fully beside the adapters and are saved with them (PEFT's "
        "modules_to_save): 'head' (default) keeps a new classifier trainable; [] trains adapters only.",
    )
    lr: float | None = Field(
        None, gt=0, description="Learning rate of the adapters (parameter group 'lora'; default: optim.lr)."
    )


class FinetuneConfig(Section):
    """Freezing, BatchNorm policy, per-layer learning rates, the unfreezing schedule and LoRA adapters."""

    freeze: list[Pattern] = Field(
        default_factory=list,
        description="Patterns to freeze: module paths or globs ('layer1', 'features.*'), 'backbone' "
        "(= 'all_but_head'), 'head', 'all', or {last: N}. A pattern that matches nothing is an error.",
    )
    unfreeze: list[Pattern] = Field(
        default_factory=list, description="Patterns to unfreeze after 'freeze' is applied."
    )
    bn: Literal["train", "freeze"] = Field(
        "freeze",
        description="BatchNorm in frozen modules: 'freeze' keeps it in eval mode (running stats fixed); "
        "'train' keeps updating running stats.",
    )
    lr_groups: list[LrGroup] = Field(default_factory=list, description="Explicit per-layer learning rates.")
    layer_decay: float | None = Field(
        None, gt=0, le=1, description="Layer-wise lr decay from the head towards the input (e.g. 0.7)."
    )
    head_lr: float | None = Field(None, gt=0, description="Learning rate of the head (default: optim.lr).")
    no_decay_bias_norm: bool = Field(True, description="No weight decay on biases and norm parameters.")
    head_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inserted before the head.")
    schedule: list[UnfreezeStep] = Field(default_factory=list, description="Gradual unfreezing schedule.")
    lora: LoraConfig | None = Field(
        None,
        description="LoRA adapters: freeze the model, train a low-rank update beside each targeted layer (and the "
        "modules_to_save). freeze/unfreeze apply after it; the pattern 'lora' selects every adapter and "
        "'lora:PATTERN' those inside PATTERN. Needs pip install 'ftui[lora]'. See docs/lora.md.",
    )


class ModelConfig(Section):
    """The network: a built-in, a torchvision or timm model, or your own code."""

    name: str = Field(
        "simple_cnn",
        description="'simple_cnn', 'mlp', a torchvision model name (resnet18, vit_b_16, ...), 'timm/<name>' "
        "(pip install 'ftui[timm]'), or your code: FILE.py:NAME (relative to this config file, e.g. ./models.py:Net) "
        "or MODULE:NAME (mypkg.models:build_net) naming a class or function that returns an nn.Module.",
    )
    weights: str | None = Field(
        None,
        description="Pretrained weights: a torchvision weights name (IMAGENET1K_V1, DEFAULT) from the local "
        "cache, 'pretrained' for a timm model (from the local Hugging Face or torch hub cache, never downloaded), "
        "or a path to a state dict (.pt/.pth/.safetensors) or an ftui checkpoint.",
    )
    head: str | None = Field(
        None,
        description="Module path of the classifier head (e.g. 'classifier.2'); default: found automatically "
        "(fc, head, classifier, ... or the last Linear). Head replacement, head_lr, {last: N} and layer_decay use it.",
    )
    weights_strict: bool = Field(
        True,
        description="Refuse a model.weights file from which less than half of the model's values outside the head "
        "would load (it was saved from another architecture or size); false loads what fits and trains the rest "
        "from scratch. Any mismatch is reported either way.",
    )
    channels: list[int] = Field(
        default_factory=lambda: [32, 64, 128], min_length=1, description="simple_cnn: channels of each stage."
    )
    batch_norm: bool = Field(True, description="simple_cnn/mlp: use batch normalisation.")
    norm: Literal["batch", "layer", "none"] | None = Field(
        None,
        description="mlp: normalisation after each hidden layer, overriding batch_norm ('batch', 'layer' or "
        "'none'; default: 'batch' when batch_norm is true).",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="simple_cnn/mlp: dropout between layers.")
    hidden: list[int] = Field(default_factory=lambda: [128, 64], description="mlp: hidden layer sizes.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the model's constructor: torchvision's, timm's, or your callable's. "
        "Your callable also receives the data facts it names as parameters (num_classes, input_shape, "
        "class_names, and the data's meta keys).",
    )

    @field_validator("channels", "hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(c <= 0 for c in v):
            raise ValueError("every size must be > 0")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if ":" in v and not is_object_name(v) and not v.startswith("timm/"):
            _check_code_name(v, "model.name")  # the form only; nothing is imported here
        if v.startswith("timm/") and len(v) == len("timm/"):
            raise ValueError("'timm/' needs a model name after it, e.g. timm/convnext_atto or timm/resnet18.a1_in1k")
        return v


class OptimConfig(Section):
    """The optimizer."""

    name: Literal["sgd", "adam", "adamw"] = Field("adamw", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, description="Base learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    nesterov: bool = Field(False, description="SGD Nesterov momentum.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW epsilon.")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must be in [0, 1)")
        return v


class ScheduleConfig(Section):
    """The learning-rate schedule, applied per optimizer step as a factor on each group's lr."""

    name: Literal["none", "step", "cosine", "onecycle", "plateau"] = Field("cosine", description="Schedule.")
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up length in epochs (cosine, step).")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine: final lr as a fraction of the base lr.")
    step_size: int = Field(10, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="step: decay factor.")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps spent increasing.")
    div_factor: float = Field(25.0, gt=1, description="onecycle: initial lr = lr / div_factor.")
    final_div_factor: float = Field(1e4, gt=1, description="onecycle: final lr = initial lr / final_div_factor.")
    patience: int = Field(3, ge=0, description="plateau: epochs without improvement before reducing.")
    factor: float = Field(0.5, gt=0, lt=1, description="plateau: reduction factor.")
    monitor: str = Field("val/loss", description="plateau: metric to watch.")
    mode: Literal["min", "max"] = Field("min", description="plateau: whether lower or higher is better.")


class EarlyStoppingConfig(Section):
    """Stop when a monitored metric stops improving."""

    monitor: str = Field("val/loss", description="Metric to watch, e.g. 'val/loss' or 'val/acc'.")
    mode: Literal["min", "max"] = Field("min", description="Whether lower or higher is better.")
    patience: int = Field(5, ge=1, description="Validation rounds without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")


class CheckpointConfig(Section):
    """Checkpointing."""

    monitor: str = Field("val/acc", description="Metric that decides best.pt.")
    mode: Literal["min", "max"] = Field("max", description="Whether lower or higher is better.")
    save_last: bool = Field(True, description="Write checkpoints/last.pt every epoch and on interrupt.")
    save_best: bool = Field(True, description="Write checkpoints/best.pt when the monitored metric improves.")
    every_n_epochs: int | None = Field(None, ge=1, description="Also keep epoch-NNNN.pt every N epochs.")
    every_n_steps: int | None = Field(
        None, ge=1, description="Also refresh last.pt every N optimizer steps (mid-epoch resume points)."
    )


class TrainerConfig(Section):
    """The training loop."""

    epochs: int = Field(10, ge=1, description="Maximum number of epochs.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    max_time: float | None = Field(None, gt=0, description="Stop after this many seconds of training.")
    device: str = Field("auto", description="'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:1', 'mps'.")
    devices: int = Field(1, ge=1, description="Number of processes/GPUs for distributed training.")
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op CPU threads (default: torch's choice, one per core). 1 is often much faster "
        "for small models on a small or busy CPU, where threads wait for each other.",
    )
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto",
        description="'auto' (bf16-mixed on a CUDA GPU with bfloat16 hardware, Ampere or newer; '32' elsewhere), "
        "'32', 'bf16-mixed' or '16-mixed' (float16 with a gradient scaler).",
    )
    accumulate_grad_batches: int = Field(1, ge=1, description="Batches per optimizer step.")
    gradient_clip_val: float | None = Field(None, gt=0, description="Clip the global gradient norm to this.")
    channels_last: Union[bool, Literal["auto"]] = Field(
        "auto", description="Image models and batches in channels_last (NHWC) memory format: true, false, or 'auto' "
        "(on CUDA)."
    )
    tf32: bool = Field(
        True, description="CUDA: float32 matmuls and convolutions may use TF32 tensor cores "
        "(torch.set_float32_matmul_precision('high')); false keeps full float32."
    )
    compile: bool = Field(False, description="torch.compile the model (training and evaluation compiled apart).")
    cudnn_benchmark: bool = Field(True, description="Let cuDNN pick the fastest kernels (off when deterministic).")
    steady_malloc: bool = Field(
        True,
        description="Linux (glibc): keep freed memory in the process rather than handing it back to the kernel "
        "after every step (malloc's trim and mmap thresholds raised), so steps do not fault their tensors in "
        "afresh: CPU epochs about 4 % faster; the process may keep up to 256 MB more. Skipped when MALLOC_* "
        "environment variables are set.",
    )
    deterministic: Union[bool, Literal["warn"]] = Field(
        False, description="Deterministic algorithms only (cuDNN autotuning off): true fails the run naming an "
        "operation that has no deterministic implementation; 'warn' goes on and records each such operation in "
        "the run (events and run.json nondeterministic_ops)."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
    on_nonfinite: Literal["fail", "skip"] = Field(
        "fail", description="Non-finite loss: 'fail' stops the run, 'skip' skips such batches and counts them."
    )
    val_every_n_epochs: int = Field(1, ge=1, description="Validate every N epochs.")
    early_stopping: EarlyStoppingConfig | None = Field(None, description="Early stopping (off when omitted).")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="Checkpointing.")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class LoggingConfig(Section):
    """What the run records and how often."""

    every_n_steps: int = Field(20, ge=1, description="Read out and log training loss/accuracy every N steps.")
    flush_seconds: float = Field(1.0, gt=0, description="Flush the run directory's JSONL files at most this often.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files under tb/.")
    tensorboard_graph: bool = Field(True, description="Add the model graph to TensorBoard.")
    layer_stats: bool = Field(True, description="Record per-layer grad/weight norms to layers.jsonl.")
    layer_stats_depth: int = Field(2, ge=1, description="Module tree depth of the per-layer statistics.")
    system: bool = Field(True, description="Record GPU/CPU telemetry to system.jsonl.")
    system_interval: float = Field(1.0, gt=0, description="Seconds between telemetry samples.")
    progress: Literal["auto", "rich", "plain", "none"] = Field(
        "auto", description="Console progress: 'auto' (Rich on a terminal, plain lines otherwise)."
    )


class Config(Section):
    """A whole ftui run configuration."""

    run: RunConfig = Field(default_factory=RunConfig, description="Run name, directory and seed.")
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset, preprocessing and loading.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model and pretrained weights.")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="Fine-tuning.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="Learning-rate schedule.")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Training loop.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

SAMPLE_HINT = "start from sample_configs/quickstart.yaml"


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; every problem raises :class:`ConfigError`."""
    path = Path(path)
    text = _read_text(path)
    raw, lines = _parse_yaml(text, path)
    if not isinstance(raw, dict):
        validate_config(raw, source=str(path))  # raises: not a mapping, so no key can be overridden in it
    parsed = parse_overrides(overrides)
    for dotted, value in parsed:
        _check_key(dotted)
        _assign(raw, dotted, value)
    overridden = {k for k, _ in parsed}
    cfg = validate_config(raw, source=str(path), lines=lines, overridden=overridden)
    resolve_code_names(cfg, base=path.resolve().parent, overridden=overridden)
    if cfg.run.name is None:
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem) or "run"
        cfg.run.name = stem if stem[0].isalnum() else f"run-{stem}"
    return cfg


def set_run_name(cfg: Config, name: str, *, source: str = "--name") -> None:
    """Give the run a name from the command line, checked as ``run.name`` is (a directory name, no path)."""
    if not re.match(RUN_NAME_PATTERN, name):
        raise ConfigError(
            f"{source} {name!r}: a run name is one directory name under run.root: letters, digits, '.', '_' and "
            f"'-', starting with a letter or digit (no '/', no '..'). Fix: e.g. {source} "
            f"{re.sub(r'[^A-Za-z0-9._-]', '-', name).strip('.-_') or 'myrun'}."
        )
    cfg.run.name = name


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a config given as a dict (for notebooks and tests), with optional overrides."""
    raw = json.loads(json.dumps(raw))
    parsed = parse_overrides(overrides)
    for dotted, value in parsed:
        _check_key(dotted)
        _assign(raw, dotted, value)
    cfg = validate_config(raw, source="<dict>", lines={}, overridden={k for k, _ in parsed})
    resolve_code_names(cfg, base=Path.cwd())
    if cfg.run.name is None:
        cfg.run.name = "run"
    return cfg


def resolve_code_names(cfg: Config, *, base: Path, overridden: set[str] | frozenset[str] = frozenset()) -> None:
    """Make the files of code names absolute: relative to ``base`` (the config file's folder), or to
    the current directory for keys given with ``--set``. Nothing is imported."""
    for key in CODE_KEYS:
        section, _, field = key.partition(".")
        owner = getattr(cfg, section)
        value = getattr(owner, field)
        if is_code_name(value):
            setattr(owner, field, absolute_name(value, key=key, base=Path.cwd() if key in overridden else base))


def validate_config(
    raw: Any, *, source: str, lines: dict[str, int] | None = None, overridden: set[str] | None = None
) -> Config:
    """Validate a parsed mapping, turning pydantic's errors into one readable :class:`ConfigError`."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__ if raw is not None else "nothing"
        raise ConfigError(
            f"{source}: the config must be a YAML mapping of sections (run, data, model, ...), "
            f"but the file holds a {kind}. Fix: write 'section:' keys at the top level; {SAMPLE_HINT}."
        )
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source, lines or {}, overridden or set())) from None


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML (every key, defaults included)."""
    data = cfg.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def config_schema() -> dict[str, Any]:
    """JSON Schema of the config, for editors' YAML language servers."""
    schema = Config.model_json_schema()
    _describe_refs(schema, Config)
    models = _all_models(Config, {})
    for definition in schema.get("$defs", {}).values():
        model = models.get(definition.get("title", ""))
        if model is not None:
            _describe_refs(definition, model)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ftui run configuration"
    return schema


def _all_models(model: type[BaseModel], out: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    out[model.__name__] = model
    for field in model.model_fields.values():
        for arg in _annotation_models(field.annotation):
            if arg.__name__ not in out:
                _all_models(arg, out)
    return out


def _annotation_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_annotation_models(arg))
    return found


def _describe_refs(definition: dict[str, Any], model: type[BaseModel]) -> None:
    """Give fields that are bare ``$ref``s their description (pydantic drops it beside a $ref)."""
    for key, prop in definition.get("properties", {}).items():
        field = model.model_fields.get(key)
        if field is not None and field.description and "description" not in prop:
            prop["description"] = field.description


# Bounds on what a config may be. A config is a few KB of YAML; these stop a stray or hostile file
# (a data file passed by mistake, /dev/zero, a "billion laughs" of nested aliases) from hanging
# `ftui config check` or eating the machine's memory before the schema ever sees it.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000  # scalars, lists and mappings, counted with every alias expanded
MAX_CONFIG_DEPTH = 64


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found. Fix: check the path; {SAMPLE_HINT}.")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file. Fix: pass a .yaml file inside it.")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)  # never more: /dev/zero has no end
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}). Fix: check its permissions.") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: is larger than {MAX_CONFIG_BYTES // (1 << 20)} MiB, which no config is (ftui reads at most "
            f"that much). Fix: pass the config's YAML file, not a data file; {SAMPLE_HINT}."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}). "
            "Fix: save the file as UTF-8."
        ) from None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(f"{path}: the config file is empty. Fix: add sections such as 'data:'; {SAMPLE_HINT}.")
    return text


class _Refused(Exception):
    """A YAML document over the bounds above; ``line`` is 1-based (0: unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds on nesting and on recursive aliases, checked while composing.

    PyYAML's composer recurses once per nesting level (a deep document ends in ``RecursionError``)
    and accepts an alias inside its own anchor (``&a [*a]``: a structure that contains itself).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors whose nodes are being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Refused(f"the alias *{event.anchor} is inside its own anchor &{event.anchor}", line)
            return super().compose_node(parent, index)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise _Refused(f"values are nested more than {MAX_CONFIG_DEPTH} levels deep", line)
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of values the node stands for once every alias is expanded (each shared node counted
    once per use, computed once): what validation and the line map would walk."""
    known = memo.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, memo) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size
    return size


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree of one YAML document, within the bounds (raises :class:`_Refused`)."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_size(node, {}) > MAX_CONFIG_VALUES:
            raise _Refused(
                f"its aliases expand to more than {MAX_CONFIG_VALUES} values (nested aliases multiply: "
                "a 'billion laughs' document)"
            )
        return loader.construct_document(node), node
    except RecursionError:  # a bound above should have stopped it first; never a traceback
        raise _Refused(f"values are nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    finally:
        loader.dispose()


def _parse_yaml(text: str, path: Path) -> tuple[Any, dict[str, int]]:
    try:
        raw, node = _compose(text)
    except _Refused as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise ConfigError(
            f"{path}: {where}refused: {exc}. Fix: write the values out plainly (a config needs no deep nesting "
            f"or nested aliases); {SAMPLE_HINT}."
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        hint = "YAML does not allow tabs for indentation; use spaces" if "\\t" in str(exc) or "\t" in str(
            exc.problem
        ) else "check the indentation and the ':' after each key"
        raise ConfigError(f"{path}: {where}invalid YAML ({exc.problem}). Fix: {hint}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc}).") from None
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines)
    return raw, lines


def _collect_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{prefix}[{i}]"
            out[key] = item.start_mark.line + 1
            _collect_lines(item, key, out)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _real_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union-branch tags (e.g. 'literal[...]', 'NormalizeStats') to locations.
    return tuple(p for p in loc if isinstance(p, int) or not re.match(r"^(literal\[|function-|[A-Z])", str(p)))


def _format_validation(exc: ValidationError, source: str, lines: dict[str, int], overridden: set[str]) -> str:
    seen: set[str] = set()
    parts: list[str] = []
    for err in exc.errors():
        loc = _real_loc(tuple(err["loc"]))
        key = _dotted(loc)
        where = ""
        if key in overridden:
            where = " (from --set)"
        elif key in lines:
            where = f" (line {lines[key]})"
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            msg = f"unknown key '{loc[-1]}'"
            if parent is not None:
                options = list(parent.model_fields)
                close = difflib.get_close_matches(str(loc[-1]), options, n=1)
                msg += f" — did you mean '{close[0]}'?" if close else ""
                msg += f" Allowed keys here: {', '.join(options)}."
            line = f"{key}{where}: {msg}"
        else:
            given = err.get("input")
            given_s = json.dumps(given, default=str) if not isinstance(given, dict) else "a mapping"
            if len(given_s) > 60:
                given_s = given_s[:57] + "..."
            line = f"{key or '<top level>'}{where}: {err['msg']} (given: {given_s})"
        if line in seen:
            continue
        seen.add(line)
        parts.append(line)
    head = f"{source}: invalid config ({len(parts)} problem{'s' if len(parts) != 1 else ''}):"
    return head + "\n  " + "\n  ".join(parts) + "\nFix the keys above; `ftui config schema` lists every key."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model at a location, following nested models (None for free-form dicts)."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The first section model inside an annotation (``X | None``, ``list[X]``...), or None."""
    models = _annotation_models(annotation)
    return models[0] if models else None


# ---------------------------------------------------------------------------------------------
# Dotted overrides
# ---------------------------------------------------------------------------------------------


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """Parse ``key.path=value`` strings; values are YAML scalars/lists (``0.01``, ``true``, ``[1, 2]``)."""
    parsed: list[tuple[str, Any]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. --set optim.lr=0.01."
            )
        key, _, value_s = item.partition("=")
        key = key.strip()
        if not key or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", key):
            raise ConfigError(f"--set {item!r}: {key!r} is not a dotted key such as optim.lr.")
        try:
            value = _compose(value_s)[0] if value_s.strip() else ""
        except _Refused as exc:
            raise ConfigError(
                f"--set {key}: refused: {exc}. Fix: give a plain value such as 0.01 or [8, 16]."
            ) from None
        except yaml.YAMLError:
            value = value_s
        parsed.append((key, value))
    return parsed


def _check_key(dotted: str) -> None:
    model: type[BaseModel] | None = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if model is None:
            return  # inside a free-form mapping such as model.kwargs
        fields = model.model_fields
        if part not in fields:
            prefix = ".".join(parts[:i])
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" — did you mean '{'.'.join([*parts[:i], close[0]])}'?" if close else ""
            raise ConfigError(
                f"--set {dotted}: unknown key '{part}'{' in ' + prefix if prefix else ''}{hint} "
                f"Allowed keys here: {', '.join(fields)}."
            )
        annotation = fields[part].annotation
        nested = _nested_model(annotation)
        if i < len(parts) - 1 and nested is None and not _is_mapping(annotation):
            raise ConfigError(f"--set {dotted}: '{'.'.join(parts[: i + 1])}' is a value, not a section.")
        model = nested


def _is_mapping(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", None)
    if origin is dict:
        return True
    return any(_is_mapping(a) for a in getattr(annotation, "__args__", ()) or ())


def _assign(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
