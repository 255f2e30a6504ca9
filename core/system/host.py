"""Host figures through psutil: system and process CPU, process RSS, system memory, worker CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` where there is none), for the
    records of measured figures."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


class HostSampler:
    """Samples the host and one process (default: this one).

    CPU percentages are measured between consecutive calls, as psutil does, so the first
    :meth:`sample` covers the time since construction. ``proc_cpu_percent`` is in percent of one
    core (a process busy on 4 cores reads 400); ``cpu_percent`` is the whole machine (0..100).
    """

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.cpu_count = psutil.cpu_count(logical=True) or 1
        self._children: dict[int, psutil.Process] = {}
        # Prime psutil's interval-less counters so the first sample measures something real.
        psutil.cpu_percent(interval=None)
        self.process.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        """One record: cpu_percent, cpu_count, proc_cpu_percent, proc_rss, mem_used, mem_total,
        children, children_cpu_percent."""
        vm = psutil.virtual_memory()
        with self.process.oneshot():
            proc_cpu = self.process.cpu_percent(interval=None)
            rss = self.process.memory_info().rss
        children, children_cpu = self._children_figures()
        return {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "cpu_count": self.cpu_count,
            "proc_cpu_percent": proc_cpu,
            "proc_rss": rss,
            # total - available is what "used" means to a user (htop, free): caches are not used.
            "mem_used": vm.total - vm.available,
            "mem_total": vm.total,
            "children": children,
            "children_cpu_percent": children_cpu,
        }

    def _children_figures(self) -> tuple[int, float | None]:
        """Live direct child processes (DataLoader workers among them) and their summed CPU percent."""
        pids = self._child_pids()
        alive: dict[int, psutil.Process] = {}
        total = 0.0
        measured = False
        for pid in pids:
            known = self._children.get(pid)
            if known is None:
                # A new child: its first cpu_percent() only primes the counter.
                try:
                    child = psutil.Process(pid)
                    child.cpu_percent(interval=None)
                except psutil.Error:
                    continue
                alive[pid] = child
                continue
            try:
                total += known.cpu_percent(interval=None)
                measured = True
            except psutil.Error:
                continue
            alive[pid] = known
        self._children = alive
        return len(pids), (total if measured or not pids else None)

    def _child_pids(self) -> list[int]:
        """Direct children's pids. Linux lists them per thread under /proc; psutil's portable way
        scans every process on the box, which costs milliseconds on a busy machine."""
        task_dir = f"/proc/{self.process.pid}/task"
        if os.path.exists(f"{task_dir}/{self.process.pid}/children"):
            pids: set[int] = set()
            try:
                tids = os.listdir(task_dir)
            except OSError:
                tids = []
            for tid in tids:
                try:
                    with open(f"{task_dir}/{tid}/children", encoding="ascii") as fh:
                        pids.update(int(p) for p in fh.read().split())
                except OSError:  # a thread that ended meanwhile
                    continue
            return sorted(pids)
        try:
            return [c.pid for c in self.process.children()]
        except psutil.Error:
            return []


def process_owner(pid: int) -> dict[str, Any]:
    """Name, user and command line of a process (None for what cannot be read)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            try:
                user = proc.username()
            except (psutil.Error, KeyError):  # KeyError: uid without a passwd entry (containers)
                user = None
            try:
                cmd = " ".join(proc.cmdline()) or None
            except psutil.Error:
                cmd = None
        return {"name": name, "user": user, "cmdline": cmd}
    except psutil.Error:
        return {"name": None, "user": None, "cmdline": None}
