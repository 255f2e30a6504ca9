"""The process the app explains in, and its torch-free client.

The app's Explain view never imports torch: :class:`ExplainWorker` starts a separate Python process
(``spawn``: a fresh interpreter, not a fork of the app's threads) that restores the checkpoint and
answers requests over a pipe with plain data (NumPy arrays, strings, numbers). The app stays
responsive however long an attribution takes, and closing the view ends the process and frees its
memory. The process's stdout and stderr go to a log file, never into the app's screen.

Requests are ``(name, kwargs)`` tuples handled by :class:`Service`; answers are ``("ok", value)`` or
``("error", message)``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Seconds to wait for the process to leave after it was asked to.
CLOSE_SECONDS = 2.0
#: Features shown per tabular sample in the gallery.
BAR_FEATURES = 8


class WorkerError(Exception):
    """The worker answered with an error (``str(exc)`` is the message for the user).

    ``kind`` is the class name of the error in the worker (``CodeNotTrusted``, ``ModelError``...).
    """

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class PageTile:
    """One tile of a gallery page: panels side by side, caption lines, and the sample it shows."""

    panels: list[np.ndarray]
    caption: list[str]
    wrong: bool = False
    record: dict[str, Any] | None = None


@dataclass
class GalleryPage:
    """What the Explain view draws: a page of tiles of one selection."""

    title: str
    tiles: list[PageTile]
    offset: int
    total: int
    method: str
    layer: str | None
    note: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Overview:
    """What the view knows once the checkpoint is open."""

    checkpoint: str
    split: str
    size: int
    class_names: list[str]
    input_kind: str
    methods: list[str]
    default_method: str
    layers: list[str]
    layer_labels: list[str]
    default_layer: str | None
    confusion: list[list[int]]
    accuracy: float
    mistakes: int
    code: list[str] = field(default_factory=list)  # the user's code imported to rebuild the model and data
    notices: list[str] = field(default_factory=list)  # warnings, e.g. that code changed since the checkpoint


class Service:
    """The worker side: an :class:`~core.explain.session.Explainer` and the requests the view makes."""

    def __init__(self) -> None:
        self.explainer: Any = None
        self.selected: dict[tuple, list[int]] = {}

    def handle(self, name: str, kwargs: dict[str, Any]) -> Any:
        method = getattr(self, f"do_{name}", None)
        if method is None:
            raise WorkerError(f"unknown request {name!r}")
        return method(**kwargs)

    def do_open(self, checkpoint: str, split: str = "test", config: str | None = None,
                overrides: list[str] | None = None, trust_code: bool = False) -> Overview:
        from core.explain import methods
        from core.explain.session import Explainer

        methods.captum()
        ex = self.explainer = Explainer.open(checkpoint, config=config, split=split, overrides=overrides or [],
                                             trust_code=trust_code, command=f"ftui explain {checkpoint} --app")
        p = ex.predictions()
        probe = ex.probe() if ex.input_kind == "image" else None
        if ex.input_kind == "image":
            usable = ["saliency", "integrated_gradients"]
            if probe and probe.layers:
                usable.insert(0, "gradcam")
        else:
            usable = ["integrated_gradients", "saliency"]
        return Overview(
            checkpoint=str(checkpoint), split=ex.split, size=len(p.labels), class_names=ex.class_names,
            input_kind=ex.input_kind, methods=usable, default_method=ex.default_method(),
            layers=probe.names() if probe else [], layer_labels=[i.label() for i in probe.layers] if probe else [],
            default_layer=probe.default if probe else None,
            confusion=p.confusion(len(ex.class_names)).tolist(), accuracy=p.accuracy(),
            mistakes=int((p.labels != p.preds).sum()), code=ex.code, notices=ex.notices,
        )

    def _indices(self, mode: str, class_name: str | None, predicted: str | None) -> list[int]:
        from core.explain.session import Selection

        key = (mode, class_name, predicted)
        if key not in self.selected:
            ex = self.explainer
            size = len(ex.dataset)
            if mode == "mistakes":
                sel = Selection(count=size, mistakes=True, class_name=class_name)
            elif mode == "cell":
                sel = Selection(count=size, class_name=class_name, predicted=predicted)
            else:
                sel = Selection(count=size, class_name=class_name)
            self.selected[key] = ex.select(sel)
        return self.selected[key]

    def do_page(self, mode: str, offset: int, count: int, method: str, layer: str | None = None,
                target: str = "pred", class_name: str | None = None, predicted: str | None = None) -> GalleryPage:
        from core.explain.session import Selection

        indices = self._indices(mode, class_name, predicted)
        offset = max(0, min(offset, max(0, len(indices) - 1)))
        chosen = indices[offset:offset + count]
        sel = Selection(count=len(indices), mistakes=mode == "mistakes", class_name=class_name, predicted=predicted)
        describe = "worst first (by loss)" if mode == "mistakes" and class_name is None else sel.describe()
        if not chosen:
            return GalleryPage(title=describe, tiles=[], offset=0, total=0, method=method, layer=layer,
                               note="no samples match")
        e = self.explainer.explain(chosen, method=method, layer=layer if method == "gradcam" else None,
                                   target=target, selection=describe)
        records = e.records()
        tabular = e.input_kind == "features" and e.maps is not None
        names = e.feature_names or ([f"f{j}" for j in range(e.maps.shape[1])] if tabular else [])
        for i, rec in enumerate(records):
            top = np.argsort(-e.probs[i])[:3]
            rec["top"] = [[e.class_names[int(k)], float(e.probs[i, k])] for k in top]
            if tabular:
                strongest = np.argsort(-np.abs(e.maps[i]), kind="stable")[:BAR_FEATURES]
                rec["bars"] = [[names[j], float(e.maps[i, j])] for j in strongest]
        tiles = [PageTile(e.panels(i) if e.input_kind == "image" else [], e.caption(i), wrong=not records[i]["correct"],
                          record=records[i]) for i in range(len(e))]
        return GalleryPage(title=e.title(), tiles=tiles, offset=offset, total=len(indices), method=e.method,
                           layer=e.layer, records=records)

    def do_activations(self, index: int, layer: str | None = None, channels: int = 8) -> GalleryPage:
        from core.explain.overlay import display_map, heat

        e = self.explainer.explain([index], method="activations", layer=layer, selection=f"sample #{index}",
                                   top_channels=channels)
        image = e.images[0]
        record = e.records()[0]
        record["top"] = [[e.class_names[int(k)], float(e.probs[0, k])] for k in np.argsort(-e.probs[0])[:3]]
        tiles = [PageTile([image], [f"#{index} {record['label']}", f"→ {record['pred']} {record['confidence']:.2f}"],
                          wrong=not record["correct"], record=record)]
        for k in range(e.activations.shape[1]):
            act = e.activations[0, k]
            tiles.append(PageTile([heat(display_map(act, "activations"))],
                                  [f"channel {int(e.channels[0, k])}", f"mean {float(act.mean()):.2f}"]))
        return GalleryPage(title=e.title(), tiles=tiles, offset=0, total=len(tiles), method="activations",
                           layer=e.layer, records=[record])


def serve(conn: Any) -> None:
    """The worker process's loop: answer requests until ``None`` arrives or the pipe closes."""
    from core.errors import FtuiError

    service = Service()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        name, kwargs = request
        try:
            answer: tuple[Any, ...] = ("ok", service.handle(name, kwargs))
        except (FtuiError, WorkerError) as exc:
            answer = ("error", str(exc), type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - reported in the view; the worker keeps serving
            import traceback

            traceback.print_exc()
            answer = ("error", f"{type(exc).__name__}: {exc}", type(exc).__name__)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return


class ExplainWorker:
    """Client of the worker process (torch-free): :meth:`call` blocks, so call it from a thread.

    The process is ``python -m core.explain.worker FD``: a fresh interpreter (no fork of the app's
    threads, no re-import of the app's ``__main__``) that talks over one end of a socket pair and
    writes its output to :attr:`log_path`. It runs in its own session, so keys and signals meant
    for the app never reach it, and it leaves when its end of the socket closes.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.log_path = Path(tempfile.gettempdir()) / f"ftui-explain-{os.getpid()}.log"

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process (it imports torch; the app does not)."""
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "core.explain.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=os.getcwd(),
            )
        theirs.close()
        self._conn = Connection(ours.detach())

    def call(self, name: str, **kwargs: Any) -> Any:
        """Send a request and wait for its answer; :class:`WorkerError` carries the worker's message."""
        with self._lock:
            if not self.alive:
                self.start()
            process, conn = self._process, self._conn  # close() may clear them from another thread
            assert process is not None
            try:
                conn.send((name, kwargs))
                while not conn.poll(0.1):
                    if process.poll() is not None:
                        raise WorkerError(
                            f"the explain process ended (exit code {process.returncode}); its log: {self.log_path}"
                        )
                status, value, *kind = conn.recv()
            except (EOFError, OSError, ValueError) as exc:
                raise WorkerError(
                    f"the explain process is gone ({type(exc).__name__}); its log: {self.log_path}"
                ) from None
        if status != "ok":
            raise WorkerError(str(value), kind[0] if kind else "")
        return value

    def close(self) -> None:
        """Ask the process to leave; end it if it does not (e.g. in the middle of a long attribution)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        try:
            conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(1.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            conn.close()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    """``python -m core.explain.worker FD``: serve on the connection whose file descriptor is FD."""
    from multiprocessing.connection import Connection

    args = sys.argv[1:] if argv is None else argv
    serve(Connection(int(args[0])))


if __name__ == "__main__":
    # Run the copy imported under its real name, so the answers pickle as core.explain.worker.*.
    from core.explain.worker import main as _main

    _main()
