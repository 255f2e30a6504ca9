"""A small Transformer encoder for token ids — a network of your own for ftui.

``forward(input_ids, attention_mask)``: ftui calls the model with the batch's dict as keyword
arguments. The constructor names ``vocab_size`` and ``max_len`` (facts the data gives in its
``meta``) and ``num_classes``, so ftui passes them; ``model.kwargs`` sets the rest. The encoder
layers live in ``encoder.layers`` (ftui counts them one by one for ``{last: N}``), the head is
``head``.
"""

from __future__ import annotations

import torch
from torch import nn


class TextEncoder(nn.Module):
    """Token + position embeddings, a Transformer encoder, masked mean pooling, a Linear head."""

    def __init__(self, vocab_size: int, num_classes: int, max_len: int, dim: int = 64, depth: int = 2,
                 heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(positions)
        x = self.encoder(x, src_key_padding_mask=~attention_mask)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (self.norm(x) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return self.head(pooled)
