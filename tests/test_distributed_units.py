"""The pieces of distributed training that need no second process: shards, environment, seeds,
error files, the launcher's verdict, the weight hash and the refusal outside torchrun."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from core.data.loader import EpochSampler
from core.errors import ConfigError
from core.runs import RunWriter, read_json
from core.training import distributed
from core.training.distributed import DistEnv
from support.training import tiny_cfg


@pytest.mark.parametrize("length,world", [(61, 2), (5, 2), (10, 3), (2, 3)])
def test_eval_shards_partition_the_split_and_train_shards_are_padded(length: int, world: int) -> None:
    evals = [[i for i, _ in EpochSampler(length, shuffle=False, seed=1, rank=r, world_size=world, pad=False)]
             for r in range(world)]
    flat = sorted(i for shard in evals for i in shard)
    assert flat == list(range(length))  # every sample once: summed metrics equal one process's
    assert max(map(len, evals)) - min(map(len, evals)) <= 1
    assert [len(EpochSampler(length, shuffle=False, seed=1, rank=r, world_size=world, pad=False))
            for r in range(world)] == [len(s) for s in evals]
    trains = [list(EpochSampler(length, shuffle=True, seed=1, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in trains}) == 1  # equal steps on every rank, as DDP needs
    assert {i for s in trains for i, _ in s} == set(range(length))


def test_environment_backend_and_seeds() -> None:
    assert DistEnv.from_env({}) == DistEnv(0, 0, 1) and not DistEnv.from_env({}).enabled
    env = DistEnv.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (env.rank, env.local_rank, env.world_size, env.enabled, env.is_main) == (3, 1, 4, True, False)
    assert distributed.launched_by_torchrun({"TORCHELASTIC_RUN_ID": "x"})
    assert distributed.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "1"})
    assert not distributed.launched_by_torchrun({})
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    # rank 0 keeps the run's seed (its streams are a single process's); other ranks get their own
    assert distributed.rank_seed(7, 0) == 7
    seeds = {distributed.rank_seed(7, r) for r in range(1, 5)} | {distributed.rank_seed(7, 1, step=10)}
    assert len(seeds) == 5 and 7 not in seeds and distributed.rank_seed(7, 2) == distributed.rank_seed(7, 2)
    # devices: the CPU stays the CPU; a process per GPU (cuda:LOCAL_RANK); nothing else multi-process
    two = DistEnv(rank=1, local_rank=1, world_size=2)
    assert distributed.device_for(torch.device("cpu"), two) == torch.device("cpu")
    assert distributed.device_for(torch.device("mps"), DistEnv()) == torch.device("mps")
    with pytest.raises(ConfigError, match="trainer.device"):
        distributed.device_for(torch.device("mps"), two)
    if torch.cuda.device_count() < 2:
        with pytest.raises(ConfigError, match="LOCAL_RANK 1"):
            distributed.device_for(torch.device("cuda", 0), two)
    # a single process: the collectives hand values back unchanged
    assert distributed.all_reduce_flags([0, 2, 1]) == [0, 2, 1]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_gather_object("h") == ["h"]


def test_devices_outside_torchrun_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    from core.training.trainer import Trainer

    with pytest.raises(ConfigError) as info:
        Trainer(tiny_cfg(tmp_path, trainer={"devices": 2}))
    assert "trainer.devices" in str(info.value) and "--nproc" in str(info.value) and "torchrun" in str(info.value)


def test_state_hash_compares_weights_and_buffers() -> None:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b.load_state_dict(a.state_dict())
    assert distributed.state_hash(a) == distributed.state_hash(b)
    with torch.no_grad():
        b[1].running_mean[0] += 1e-6  # a buffer differs: BatchNorm statistics count too
    assert distributed.state_hash(a) != distributed.state_hash(b)


def test_rank_errors_give_rank_zero_the_root_cause(tmp_path: Path) -> None:
    assert distributed.first_peer_error(tmp_path, time.time(), wait_s=0) is None
    distributed.write_rank_error(tmp_path, 2, "training failed: ValueError: late", None)
    time.sleep(0.01)
    t = time.time()
    distributed.write_rank_error(tmp_path, 1, "rank 1: data: bad file x.png", "Traceback ...")
    errors = distributed.read_rank_errors(tmp_path)
    assert [e["rank"] for e in errors] == [2, 1]  # oldest first
    first = distributed.first_peer_error(tmp_path, t + 1.0, wait_s=0)
    assert first is not None and first["rank"] == 2
    # an error written long after rank 0's own failure is an echo of it, not its cause
    assert distributed.first_peer_error(tmp_path, errors[0]["time"] - 10, wait_s=0) is None
    assert distributed.looks_like_peer_failure(RuntimeError("[pair.cc:545] Read error: Connection reset by peer"))
    assert not distributed.looks_like_peer_failure(ValueError("shape mismatch"))


def _run(tmp_path: Path, status: str) -> Path:
    writer = RunWriter.create(tmp_path, "r")
    if status != "created":
        writer.set_status(status)
    writer.close()
    return writer.path


def test_launcher_verdict_from_the_run_and_torchrun(tmp_path: Path) -> None:
    from core.launch import launcher_outcome

    assert launcher_outcome(_run(tmp_path / "a", "finished"), None, None).exit_code == 0
    assert launcher_outcome(_run(tmp_path / "b", "stopped"), None, None).exit_code == 0
    assert launcher_outcome(_run(tmp_path / "c", "interrupted"), 2, None).exit_code == 130
    assert launcher_outcome(_run(tmp_path / "d", "interrupted"), 15, None).exit_code == 143

    # a worker killed before anything was recorded: torchrun's first failure names it
    killed = _run(tmp_path / "e", "running")
    assert launcher_outcome(killed, None, (1, "killed by SIGKILL")).exit_code == 1
    info = read_json(killed / "run.json")
    assert info["status"] == "failed" and info["error"] == "rank 1 failed (killed by SIGKILL)"
    last = json.loads((killed / "events.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "error" and last["rank"] == 1

    # rank 0 only saw a peer go away: the launcher adds who and why, from the rank's own error file
    vague = RunWriter.create(tmp_path / "f", "r")
    vague.set_status("failed", error=f"rank 0: {distributed.PEER_FAILURE} (training failed: RuntimeError: reset)")
    vague.close()
    distributed.write_rank_error(vague.path, 1, "training failed: ValueError: boom")
    assert launcher_outcome(vague.path, None, (1, "exit code 1")).exit_code == 1
    error = read_json(vague.path / "run.json")["error"]
    assert error == ("rank 1 failed: training failed: ValueError: boom; rank 0 saw: "
                     f"{distributed.PEER_FAILURE} (training failed: RuntimeError: reset)")
