"""Check that the `shapes` quickstart data is learnable but not trivial (not a test: minutes of CPU).

A plain PyTorch loop with the quickstart's recipe: a 3-stage CNN (32/64/128 channels, BatchNorm),
AdamW lr 3e-3, one-cycle schedule, batch 128, horizontal flips, 12000 training samples at
difficulty 0.5, 5 epochs. It goes through ``core.data`` (build_data + build_loader), so it also
measures the data pipeline. Prints validation accuracy after each epoch and the wall time.

Seen on the shared 2-core CI box (load ~5, so times are inflated): defaults (32x32, 12000 samples,
32/64/128) reached val acc 0.42, 0.73, 0.979, 0.981, 0.994 after epochs 1-5 (data ~13 % of the time);
``--image-size 16 --train-size 4000 --channels 16,32,64 --batch-size 64 --epochs 3`` reached 0.43,
0.76, 0.88 in 64 s.

    python benchmarks/shapes_learnability.py [--epochs 5] [--difficulty 0.5] [--train-size 12000]
        [--image-size 32] [--channels 32,64,128] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from core.config import config_from_dict
from core.data import build_data, build_loader


def small_cnn(num_classes: int, channels: tuple[int, ...] = (32, 64, 128)) -> nn.Module:
    """Three conv stages with BatchNorm, then global average pooling and a linear head."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def main() -> None:
    """Train and report validation accuracy per epoch."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--classes", default="circle,square,triangle,cross,ring,star")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", default="32,64,128")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    cfg = config_from_dict(
        {
            "data": {
                "source": "shapes",
                "shapes": {
                    "classes": args.classes.split(","),
                    "difficulty": args.difficulty,
                    "image_size": args.image_size,
                    "train_size": args.train_size,
                    "val_size": 2000,
                    "test_size": 0,
                },
                "batch_size": args.batch_size,
                "augment": {"hflip": 0.5},
            }
        }
    ).data
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    data = build_data(cfg, args.seed)
    print(f"build_data: {time.perf_counter() - t0:.2f}s, normalization {data.normalization}")
    train = build_loader(data.train, cfg, split="train", seed=args.seed)
    val = build_loader(data.val, cfg, split="val", seed=args.seed)
    model = small_cnn(data.num_classes, tuple(int(c) for c in args.channels.split(",")))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * len(train))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        model.train()
        t_epoch = time.perf_counter()
        t_data = 0.0
        t_mark = time.perf_counter()
        for x, y in train:
            t_data += time.perf_counter() - t_mark
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            t_mark = time.perf_counter()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        print(
            f"epoch {epoch}: loss {loss.item():.3f} val acc {correct / total:.4f} "
            f"({time.perf_counter() - t_epoch:.1f}s, data {t_data:.1f}s)",
            flush=True,
        )
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
