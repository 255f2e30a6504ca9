"""Loaders: same seed same batches, augmentation per (seed, epoch, index), workers, resume, sharding."""

from __future__ import annotations

import pytest
import torch

from core.config import config_from_dict
from core.data import EpochSampler, build_data, build_loader
from core.data.loader import resolve_num_workers
from core.errors import DataError


def shapes_cfg(**data: object):
    base = {
        "source": "shapes",
        "shapes": {"train_size": 96, "val_size": 32, "test_size": 0, "image_size": 16},
        "batch_size": 16,
        "num_workers": 0,
        "augment": {"hflip": 0.5, "affine": {}, "random_erasing": {"p": 0.5}},
    }
    base.update(data)
    return config_from_dict({"data": base}).data


def batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


@pytest.fixture(scope="module")
def bundle():
    return build_data(shapes_cfg(), seed=5)


def test_same_seed_same_batches_and_epochs_differ(bundle) -> None:
    cfg = shapes_cfg()
    first = batches(build_loader(bundle.train, cfg, split="train", seed=5), 1)
    # A fresh bundle and loader, and unrelated draws from the global RNG in between.
    torch.rand(100)
    again = batches(build_loader(build_data(cfg, seed=5).train, cfg, split="train", seed=5), 1)
    assert len(first) == 96 // 16 and same(first, again)
    other_epoch = batches(build_loader(bundle.train, cfg, split="train", seed=5), 2)
    assert not same(first, other_epoch)
    other_seed = batches(build_loader(bundle.train, cfg, split="train", seed=6), 1)
    assert not same(first, other_seed)


def test_train_augmentation_differs_across_epochs_val_is_identical(bundle) -> None:
    x0, y0 = bundle.train[(3, 0)]
    x1, y1 = bundle.train[(3, 1)]
    assert y0 == y1 and not torch.equal(x0, x1)
    assert torch.equal(bundle.train[(3, 1)][0], x1)  # a function of (seed, epoch, index)
    assert torch.equal(bundle.val[(3, 0)][0], bundle.val[(3, 7)][0])
    val = build_loader(bundle.val, shapes_cfg(), split="val", seed=5)
    assert same(batches(val, 0), batches(val, 4))
    assert [y for _, ys in batches(val, 0) for y in ys.tolist()] == bundle.val.targets  # ordered


def test_num_workers_do_not_change_batches(bundle) -> None:
    plain = batches(build_loader(bundle.train, shapes_cfg(num_workers=0), split="train", seed=5), 3)
    with build_loader(bundle.train, shapes_cfg(num_workers=2), split="train", seed=5) as loader:
        assert loader.num_workers == 2 and loader.loader.persistent_workers
        assert same(plain, batches(loader, 3))
        # Persistent workers: the next epoch is still ordered and augmented by (seed, epoch) ...
        assert same(batches(build_loader(bundle.train, shapes_cfg(), split="train", seed=5), 4), batches(loader, 4))
        # ... and a mid-epoch resume skips in the main process, so workers see the same indices.
        loader.set_epoch(3)
        loader.set_start_batch(2)
        assert same([(x.clone(), y.clone()) for x, y in loader], plain[2:])
        workers = [w for w in loader.loader._iterator._workers]
        assert all(w.is_alive() for w in workers)
    # closed: the persistent workers are gone now, not when the collector finds the loader
    assert not any(w.is_alive() for w in workers) and loader.loader._iterator is None
    # and the loader still works (new workers)
    with loader:
        assert same(plain, batches(loader, 3))


def test_set_start_batch_resumes_mid_epoch_once(bundle) -> None:
    cfg = shapes_cfg()
    full = batches(build_loader(bundle.train, cfg, split="train", seed=5), 2)
    loader = build_loader(bundle.train, cfg, split="train", seed=5)
    loader.set_epoch(2)
    loader.set_start_batch(4)
    assert len(loader) == 6
    resumed = [(x.clone(), y.clone()) for x, y in loader]
    assert same(resumed, full[4:])
    assert same(batches(loader, 2), full)  # only one epoch is shortened


def test_sharding_matches_distributed_sampler_semantics() -> None:
    ranks = [list(EpochSampler(10, shuffle=True, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [4, 4, 4]  # padded from 10 to 12
    order = EpochSampler(10, shuffle=True, seed=1).order(0)
    assert sorted(order) == list(range(10))
    padded = order + order[:2]
    for r in range(3):
        assert [i for i, _ in ranks[r]] == padded[r::3]
        assert all(epoch == 0 for _, epoch in ranks[r])
    ordered = EpochSampler(5, shuffle=False, seed=1, rank=1, world_size=2)
    assert [i for i, _ in ordered] == [1, 3, 0]


def test_loader_options_from_config(bundle) -> None:
    cfg = shapes_cfg(eval_batch_size=10, pin_memory="auto")
    train = build_loader(bundle.train, cfg, split="train", seed=5, device_type="cuda")
    val = build_loader(bundle.val, cfg, split="val", seed=5)
    assert train.loader.pin_memory and not val.loader.pin_memory
    assert train.loader.drop_last and not val.loader.drop_last
    assert len(val) == 4 and val.batch_size == 10  # 32 samples in batches of 10: 10, 10, 10, 2
    assert not train.loader.persistent_workers  # no workers, nothing to keep alive
    assert resolve_num_workers(3) == 3 and 0 <= resolve_num_workers("auto") <= 8


def test_batch_larger_than_training_split_is_an_error(bundle) -> None:
    with pytest.raises(DataError, match=r"data\.batch_size: 500 is larger than the training split"):
        build_loader(bundle.train, shapes_cfg(batch_size=500), split="train", seed=0)


def test_augmentation_leaves_callers_rng_alone(bundle) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    bundle.train[(0, 0)]
    assert torch.equal(torch.rand(3), expected)


def test_workers_send_uint8_and_batches_equal_their_items_normalised(bundle) -> None:
    """Issue 23: a quarter of the bytes through shared memory and PCIe; the same tensors as before."""
    cfg = shapes_cfg(num_workers=1, normalize="auto", persistent_workers=False)
    data = build_data(cfg, seed=5)
    with build_loader(data.train, cfg, split="train", seed=5) as loader:
        loader.set_epoch(2)
        x, y = next(iter(loader.loader))  # what a worker sent
        assert x.dtype == torch.uint8 and x.shape == (16, 3, 16, 16)
        loader.set_epoch(2)
        finished = [(x.clone(), y.clone()) for x, y in loader]
    items = [data.train[(i, 2)] for i in EpochSampler(len(data.train), shuffle=True, seed=5).order(2)]
    expected = torch.stack([x for x, _ in items[:16]])
    assert finished[0][0].dtype == torch.float32 and torch.equal(finished[0][0], expected)  # bit for bit
    assert finished[0][0].abs().max() > 1  # normalised, not [0, 1]
    # on request, in channels_last, with the same values
    last = build_loader(data.train, cfg, split="train", seed=5, device="cpu", channels_last=True)
    last.set_epoch(2)
    x_cl = next(iter(last))[0]
    assert x_cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(x_cl, expected)
    assert loader.dataset is data.train and not data.train.is_raw  # indexing the split still gives floats


def test_other_data_moves_unchanged(tmp_path) -> None:
    import numpy as np

    rows = np.random.default_rng(0).normal(size=(40, 3))
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,label\n" + "\n".join(f"{a},{b},{c},{'xy'[i % 2]}" for i, (a, b, c) in enumerate(rows)))
    cfg = config_from_dict({"data": {"source": "csv", "csv": {"path": str(path), "target": "label"},
                                     "batch_size": 8, "num_workers": 0}}).data
    data = build_data(cfg, seed=0)
    loader = build_loader(data.train, cfg, split="train", seed=0, device="cpu", channels_last=True)
    assert getattr(data.train, "finish", None) is None
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape == (8, 3) and torch.equal(x, torch.stack([data.train[i][0] for i in
                                                                                             loader.sampler.order(0)[:8]]))
