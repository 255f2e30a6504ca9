"""Finding, replacing and regularising a classifier's head, and adapting its input stem.

The head is the last layer that maps features to class scores. Torchvision keeps it in a handful of
places (``fc``, ``classifier``, ``classifier[-1]``, ``heads.head``, ``head``); anything else falls
back to the last Linear of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ModelError

# Checked in order; the first that exists and ends in a Linear/Conv2d wins.
_HEAD_CANDIDATES = ("fc", "heads.head", "head", "classifier", "last_linear")


class DropoutLinear(nn.Linear):
    """A Linear that applies dropout to its input; same parameters and state-dict keys as ``nn.Linear``.

    Used for ``finetune.head_dropout`` when the head has no Dropout right before it, so that the
    head's module path and checkpoint keys stay the same with and without head dropout.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.0) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.dropout(x, self.p, self.training))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def find_head(model: nn.Module) -> str:
    """Return the dotted module path of the classifier head.

    Raises:
        ModelError: when the model has no Linear or 1x1-conv classifier at all.
    """
    modules = dict(model.named_modules())
    for name in _HEAD_CANDIDATES:
        module = modules.get(name)
        if module is None:
            continue
        if _is_head_layer(module):
            return name
        if isinstance(module, nn.Sequential):
            # classifier = Sequential(..., Linear) or SqueezeNet's (Dropout, Conv2d, ReLU, Pool).
            for index in reversed(range(len(module))):
                if _is_head_layer(module[index]):
                    return f"{name}.{index}"
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if last:
        return last[-1]
    raise ModelError(
        f"model: cannot find a classifier head in {type(model).__name__} (no Linear layer and none of "
        f"{', '.join(_HEAD_CANDIDATES)}); use a classification model."
    )


def _is_head_layer(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1))


def head_classes(head: nn.Module) -> int:
    """Number of classes a head layer produces."""
    return head.out_features if isinstance(head, nn.Linear) else head.out_channels  # type: ignore[return-value]


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at a dotted path."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def replace_head(model: nn.Module, head_path: str, num_classes: int) -> bool:
    """Give the head ``num_classes`` outputs (freshly initialised); return whether it was replaced.

    A head that already has the right class count is kept, so a pretrained head survives a
    fine-tune on the same classes.
    """
    old = model.get_submodule(head_path)
    if head_classes(old) == num_classes:
        return False
    if isinstance(old, nn.Linear):
        new: nn.Module = type(old)(old.in_features, num_classes, bias=old.bias is not None)
        if isinstance(old, DropoutLinear):
            new.p = old.p  # type: ignore[union-attr]
    else:
        assert isinstance(old, nn.Conv2d)
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    set_module(model, head_path, new)
    return True


def set_head_dropout(model: nn.Module, head_path: str, p: float) -> str:
    """Put dropout with probability ``p`` right before the head; return a note saying how.

    An existing Dropout directly before the head (MobileNet, EfficientNet, VGG, SqueezeNet) gets the
    new probability; otherwise a Linear head becomes a :class:`DropoutLinear` with the same weights.
    """
    parent_path, _, name = head_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if isinstance(parent, nn.Sequential) and name.isdigit() and int(name) > 0:
        before = parent[int(name) - 1]
        if isinstance(before, nn.Dropout):
            before.p = p
            prev = f"{parent_path}.{int(name) - 1}" if parent_path else str(int(name) - 1)
            return f"head dropout: {prev} set to p={p}"
    head = model.get_submodule(head_path)
    if not isinstance(head, nn.Linear):
        raise ModelError(
            f"finetune.head_dropout: the head {head_path} is a {type(head).__name__} without a Dropout before "
            f"it; set finetune.head_dropout: 0 for this model."
        )
    new = DropoutLinear(head.in_features, head.out_features, bias=head.bias is not None, p=p)
    new.to(device=head.weight.device, dtype=head.weight.dtype)
    new.load_state_dict(head.state_dict())
    set_module(model, head_path, new)
    return f"head dropout: p={p} before {head_path}"


def adapt_input_channels(model: nn.Module, channels: int) -> str | None:
    """Make the first convolution accept ``channels`` inputs (torchvision models expect 3).

    Pretrained RGB filters are averaged over the colour channels and repeated, which keeps the
    response to a grey image the same (the usual trick for grayscale fine-tuning).
    """
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels == channels or first[1].groups != 1:
        return None
    path, conv = first
    new = nn.Conv2d(
        channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True) * conv.in_channels / channels
        new.weight.copy_(mean.repeat(1, channels, 1, 1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    set_module(model, path, new)
    return f"input stem {path}: {conv.in_channels} -> {channels} channels"
