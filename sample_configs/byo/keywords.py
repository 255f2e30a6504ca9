"""A text-like dataset of your own for ftui: token ids with an attention mask, generated offline.

``make_keywords(...)`` is what the config names (``data.source: ./byo/keywords.py:make_keywords``).
Each item is ``({"input_ids": ..., "attention_mask": ...}, label)``: the inputs are a dict, which
ftui passes to the model as keyword arguments. Sequences have different lengths and are padded to
``max_len`` (token 0); the mask is True on real tokens.

The task: each of four topics has its own keywords; a sequence holds filler words, a few keywords of
its topic and at least two fewer of another topic (distractors). The label is the topic with the most keywords —
a model has to find and count them, wherever they are, and ignore the padding.

``meta`` tells ftui facts about the data (``vocab_size``, ``max_len``); a model whose constructor
names them receives them, so the embedding always fits the vocabulary. ``collate`` trims the padding
that every sequence of a batch shares, so short batches cost less.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

TOPICS = ["sports", "weather", "music", "cooking"]
PAD = 0
KEYWORDS_PER_TOPIC = 6
FILLER = 200  # filler word ids follow the keywords


class Keywords(Dataset):
    """``size`` sequences of 8..``max_len`` tokens; a function of (seed, split, index)."""

    def __init__(self, size: int, *, seed: int, split: str, max_len: int = 48) -> None:
        self.size = size
        self.seed = seed
        self.offset = {"train": 0, "val": 1, "test": 2}[split] * 10_000_019
        self.max_len = max_len
        self.targets = [(index * 5 + seed) % len(TOPICS) for index in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        label = self.targets[index]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.offset + index)
        length = int(torch.randint(8, self.max_len + 1, (), generator=g))
        first_keyword = 1
        first_filler = first_keyword + len(TOPICS) * KEYWORDS_PER_TOPIC
        tokens = torch.randint(first_filler, first_filler + FILLER, (length,), generator=g)
        other = (label + 1 + int(torch.randint(0, len(TOPICS) - 1, (), generator=g))) % len(TOPICS)
        n_true = int(torch.randint(3, 6, (), generator=g))
        n_other = int(torch.randint(0, n_true - 1, (), generator=g))  # at least two fewer than the topic's
        picks = [(label, n_true), (other, n_other)]
        slots = torch.randperm(length, generator=g)[: n_true + n_other].tolist()
        for topic, count in picks:
            for _ in range(count):
                word = first_keyword + topic * KEYWORDS_PER_TOPIC + int(torch.randint(0, KEYWORDS_PER_TOPIC, (), generator=g))
                tokens[slots.pop()] = word
        input_ids = torch.full((self.max_len,), PAD, dtype=torch.long)
        input_ids[:length] = tokens
        attention_mask = torch.zeros(self.max_len, dtype=torch.bool)
        attention_mask[:length] = True
        return {"input_ids": input_ids, "attention_mask": attention_mask}, label


def vocab_size() -> int:
    """Padding, the keywords, the filler words."""
    return 1 + len(TOPICS) * KEYWORDS_PER_TOPIC + FILLER


def make_keywords(seed: int, train_size: int = 6000, val_size: int = 1000, test_size: int = 1000,
                  max_len: int = 48) -> dict:
    """The splits, the class names, and facts for the model (meta)."""
    return {
        "train": Keywords(train_size, seed=seed, split="train", max_len=max_len),
        "val": Keywords(val_size, seed=seed, split="val", max_len=max_len),
        "test": Keywords(test_size, seed=seed, split="test", max_len=max_len),
        "class_names": TOPICS,
        "meta": {"vocab_size": vocab_size(), "max_len": max_len},
    }


def collate(items: list[tuple[dict[str, torch.Tensor], int]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Stack a batch and cut the columns that are padding in every sequence of it."""
    masks = torch.stack([inputs["attention_mask"] for inputs, _ in items])
    width = int(masks.sum(dim=1).max())
    ids = torch.stack([inputs["input_ids"] for inputs, _ in items])
    labels = torch.tensor([label for _, label in items])
    return {"input_ids": ids[:, :width], "attention_mask": masks[:, :width]}, labels
