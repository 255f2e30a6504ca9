"""``trainer.steady_malloc``: glibc keeps freed memory, so a step does not fault its tensors in afresh."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from core.config import config_from_dict

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

# Allocate 10 MB in 100 KB blocks (under the mmap threshold: from the heap), touch, free them all, then
# allocate and touch them again: the page faults of the second round say whether the heap was trimmed.
PROBE = r"""
import ctypes, resource, sys
from core.training.runtime import steady_malloc
applied = steady_malloc() if sys.argv[1] == "steady" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def round_trip():
    blocks = [libc.malloc(100_000) for _ in range(100)]
    for b in blocks:
        ctypes.memset(b, 1, 100_000)
    for b in reversed(blocks):
        libc.free(b)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(mode: str, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return out[0] == "True", int(out[1])


def test_steady_malloc_keeps_freed_memory_instead_of_faulting_it_in_again() -> None:
    applied, steady_faults = _probe("steady")
    _, default_faults = _probe("default")
    assert applied
    # glibc's default trims the freed 10 MB and faults ~2,400 pages back in; kept, it faults almost none
    assert default_faults > 1000
    assert steady_faults < 100


def test_steady_malloc_leaves_the_users_own_malloc_settings_alone() -> None:
    applied, _ = _probe("steady", MALLOC_ARENA_MAX="2")
    assert not applied


def test_steady_malloc_is_on_by_default_and_can_be_turned_off() -> None:
    assert config_from_dict({}).trainer.steady_malloc is True
    assert config_from_dict({"trainer": {"steady_malloc": False}}).trainer.steady_malloc is False
