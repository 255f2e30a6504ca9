"""The Explain view: which pixels a checkpoint's model looked at, on its worst mistakes and per class.

Everything that needs torch happens in a separate process (:class:`core.explain.worker.ExplainWorker`),
started when the view opens and ended when it closes; this screen only sends requests from thread
workers and draws the pages that come back, so the app never freezes and never imports torch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from core.explain.worker import ExplainWorker, GalleryPage, Overview, WorkerError
from tui.widgets.explain_confusion import ConfusionPicker
from tui.widgets.explain_gallery import ExplainGallery, Layout, plan_layout

#: Columns from which the confusion matrix sits beside the gallery; its width; header, detail and footer lines.
WIDE = 100
SIDE_WIDTH = 44
CHROME_LINES = 5
#: Pages kept for going back and forth without asking the worker again.
PAGE_CACHE = 32
METHOD_NAMES = {"gradcam": "Grad-CAM", "saliency": "saliency", "integrated_gradients": "Integrated Gradients"}
MODES = {"mistakes": "worst first", "per-class": "every class"}


@dataclass
class ViewState:
    """What the view shows: which samples, explained how."""

    mode: str = "mistakes"  # mistakes | per-class | class | cell
    class_name: str | None = None
    predicted: str | None = None
    method: str = "gradcam"
    layer: str | None = None
    target: str = "pred"  # pred | label
    offset: int = 0  # first sample of the page within the selection
    activations: bool = False  # showing the feature maps of one sample instead


@dataclass
class Opened(Message):
    """The worker restored the checkpoint."""

    overview: Overview


@dataclass
class PageReady(Message):
    """A page of tiles for request ``request``."""

    page: GalleryPage
    layout: Layout
    request: int
    select: int
    key: tuple = ()


@dataclass
class Failed(Message):
    """A request failed; ``message`` is for the user, ``kind`` the error's class in the worker."""

    message: str
    request: int
    kind: str = ""


def _lines(*lines: Text) -> Text:
    """Lines that are cut with an ellipsis instead of wrapping (the header and detail have fixed heights)."""
    joined = Text("\n").join(lines)
    joined.no_wrap, joined.overflow = True, "ellipsis"
    return joined


def short_checkpoint(path: Path) -> str:
    """``quickstart/best.pt`` for ``runs/quickstart/checkpoints/best.pt``, else the path as given."""
    if path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}/{path.name}"
    return str(path)


class ExplainScreen(Screen):
    """Gallery of samples with their attribution maps; keys step, switch method/layer, pick a matrix cell."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]

    DEFAULT_CSS = """
    ExplainScreen #explain-header {
        height: 2;
        padding: 0 1;
        background: $panel;
    }
    ExplainScreen #explain-body {
        height: 1fr;
    }
    ExplainScreen #explain-side {
        width: 44;  /* SIDE_WIDTH */
        padding: 0 1;
        border-left: vkey $panel;
    }
    ExplainScreen #explain-detail {
        height: 2;
        padding: 0 1;
        background: $panel;
    }
    ExplainScreen.-narrow #explain-side {
        display: none;
    }
    ExplainScreen.-narrow.-side-open #explain-side {
        display: block;
        width: 1fr;
        border-left: none;
    }
    ExplainScreen.-narrow.-side-open ExplainGallery {
        display: none;
    }
    """

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Leave activations or the matrix, or close the view."),
        Binding("left", "step(-1)", "Prev", show=False),
        # arrows go without saying: the footer keeps its room for the keys that need one (? lists all)
        Binding("right", "step(1)", "Next", show=False, tooltip="Next sample (left: previous); pages turn at the ends."),
        Binding("up", "step_row(-1)", "Up", show=False),
        Binding("down", "step_row(1)", "Down", show=False),
        Binding("pagedown,right_square_bracket", "page(1)", "Page", key_display="]",
                tooltip="Next page of samples ([ or page up: previous)."),
        Binding("pageup,left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("m", "cycle_method", "Method", tooltip="Switch Grad-CAM, saliency, Integrated Gradients."),
        Binding("l", "pick_layer", "Layer", tooltip="Pick the layer Grad-CAM and activations look at."),
        Binding("t", "toggle_target", "Target", show=False, tooltip="Explain the predicted class or the true class."),
        Binding("w", "mistakes", "Worst", tooltip="The samples with the highest loss first (the worst mistakes)."),
        Binding("c", "cycle_class", "Class", tooltip="Samples of every class, then of one class at a time."),
        Binding("x", "confusion", "Matrix", tooltip="Go to the confusion matrix; enter on a cell shows its samples."),
        Binding("a", "activations", "Activations",
                tooltip="The strongest feature maps of the layer for the selected sample."),
    ]

    def __init__(self, checkpoint: Path | str, *, split: str = "test", standalone: bool = False,
                 method: str | None = None, layer: str | None = None, config: Path | None = None,
                 overrides: list[str] | None = None, trust_code: bool = False) -> None:
        super().__init__()
        self.trust_code = trust_code
        self.config = str(config) if config is not None else None
        self.overrides = list(overrides or [])
        self.asked = {"method": method, "layer": layer}
        self.checkpoint = Path(checkpoint)
        self.split = split
        self.standalone = standalone
        self.explainer = ExplainWorker()
        self.overview: Overview | None = None
        self.view = ViewState()
        self._request = 0
        self._before_activations = (0, 0)
        self._page_cache: dict[tuple, tuple[GalleryPage, Layout]] = {}
        self.ready = False
        """True once a page is drawn (tests wait for it)."""
        self.error: str | None = None

    # ---- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Explain {self.checkpoint}", style="bold"), id="explain-header")
        with Horizontal(id="explain-body"):
            yield ExplainGallery(id="gallery")
            with Vertical(id="explain-side"):
                yield Label("Confusion matrix (rows: true). x: go there, enter: a cell's samples", classes="pane-title")
                yield ConfusionPicker(id="confusion")
        yield Static(id="explain-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.checkpoint)
        gallery = self.query_one(ExplainGallery)
        gallery.message(Text(f"Opening {self.checkpoint} in a separate process (it loads torch and rebuilds the "
                             f"{self.split} split)…", style="italic"))
        gallery.focus()
        self.open_checkpoint()

    def on_unmount(self) -> None:
        # Ending the process can take a moment (it may be mid-attribution): not on the UI thread.
        threading.Thread(target=self.explainer.close, name="ftui-explain-close", daemon=True).start()

    # ---- talking to the worker ----------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="explain-open")
    def open_checkpoint(self) -> None:
        try:
            overview = self.explainer.call("open", checkpoint=str(self.checkpoint), split=self.split,
                                           config=self.config, overrides=self.overrides, trust_code=self.trust_code)
        except WorkerError as exc:
            self.post_message(Failed(str(exc), -1, exc.kind))
            return
        self.post_message(Opened(overview))

    def on_opened(self, message: Opened) -> None:
        ov = self.overview = message.overview
        asked = self.asked["method"]
        self.view.method = asked if asked in ov.methods else ov.default_method
        self.view.layer = self.asked["layer"] or ov.default_layer
        self.query_one(ConfusionPicker).show(ov.confusion, ov.class_names)
        for name in ov.code:
            self.notify(f"running your code: {name}", timeout=6, markup=False)
        for notice in ov.notices:
            self.notify(notice, severity="warning", timeout=10)
        self.request_page()

    def _layout(self) -> Layout:
        # From the screen's size, not the gallery's: the gallery may be hidden (the matrix on a narrow screen).
        width, height = self.size.width, self.size.height - CHROME_LINES
        if width >= WIDE:
            width -= SIDE_WIDTH + 1
        width, height = max(10, width), max(4, height - 1)
        ov = self.overview
        if self.view.activations:
            return plan_layout(width, height, 1, source_side=self._source_side(), want=9)
        if ov is not None and ov.input_kind == "features":
            return plan_layout(width, height, 1, bars=True)
        return plan_layout(width, height, 2, source_side=self._source_side())

    def _source_side(self) -> int:
        page = self.query_one(ExplainGallery).page
        if page is not None and page.tiles and page.tiles[0].panels:
            return int(page.tiles[0].panels[0].shape[0])
        return 0

    def request_page(self, select: int = 0) -> None:
        """Ask the worker for the page at ``self.view.offset`` (or the activations of the selected sample)."""
        if self.overview is None:
            return
        self._request += 1
        layout = self._layout()
        if self.view.activations:
            tile = self.query_one(ExplainGallery).selected_tile()
            if tile is None or tile.record is None:
                self.view.activations = False
                return
            key: tuple = ("activations", tile.record["index"], self.view.layer)
            args = {"index": int(tile.record["index"]), "layer": self.view.layer}
            name = "activations"
        else:
            v = self.view
            key = ("page", v.mode, v.class_name, v.predicted, v.method, v.layer, v.target, v.offset, layout.capacity)
            args = {"mode": v.mode, "offset": v.offset, "count": layout.capacity, "method": v.method,
                    "layer": v.layer, "target": v.target, "class_name": v.class_name, "predicted": v.predicted}
            name = "page"
        cached = self._page_cache.get(key)
        if cached is not None and cached[1] == layout:
            self.post_message(PageReady(cached[0], layout, self._request, select, key))
            return
        self.query_one(ExplainGallery).message(Text("computing…", style="italic"))
        self.fetch(name, args, key, layout, self._request, select)

    @work(thread=True, exclusive=True, exit_on_error=False, group="explain-page")
    def fetch(self, name: str, args: dict[str, Any], key: tuple, layout: Layout, request: int, select: int) -> None:
        try:
            page = self.explainer.call(name, **args)
        except WorkerError as exc:
            self.post_message(Failed(str(exc), request))
            return
        self.post_message(PageReady(page, layout, request, select, key))

    async def on_page_ready(self, message: PageReady) -> None:
        if message.key:
            self._page_cache.pop(message.key, None)
            self._page_cache[message.key] = (message.page, message.layout)  # the newest last
            while len(self._page_cache) > PAGE_CACHE:
                self._page_cache.pop(next(iter(self._page_cache)))
        if message.request != self._request:
            return  # a newer request is on its way
        page = message.page
        self.view.offset = page.offset if not self.view.activations else self.view.offset
        select = message.select if message.select >= 0 else len(page.tiles) - 1
        await self.query_one(ExplainGallery).show(page, message.layout, select)
        self.error = None
        self.ready = True
        self._draw_header()
        self._draw_detail()

    def on_failed(self, message: Failed) -> None:
        if message.request not in (-1, self._request):
            return
        if message.kind == "CodeNotTrusted" and not self.trust_code:
            self._ask_consent(message.message)
            return
        self.error = message.message
        self.query_one(ExplainGallery).message(Text(message.message, style="bold red"))
        self.notify(message.message, title="Explain", severity="error", timeout=10, markup=False)
        self.ready = True

    def _ask_consent(self, message: str) -> None:
        """The checkpoint names the user's code: run it only if the user says yes here."""
        from tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.trust_code = True
                self.query_one(ExplainGallery).message(Text("Opening with your code…", style="italic"))
                self.open_checkpoint()
            else:
                self.error = message
                self.query_one(ExplainGallery).message(Text(message, style="bold red"))
                self.ready = True

        self.app.push_screen(ConfirmScreen("Run the code this checkpoint names?", message), answered)

    def on_resize(self) -> None:
        page = self.query_one(ExplainGallery).page
        if page is None or self.overview is None:
            return
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        gallery = self.query_one(ExplainGallery)
        if gallery.layout_plan is not None and self._layout() != gallery.layout_plan:
            self.request_page(gallery.selected)

    # ---- drawing ------------------------------------------------------------------------------

    def _draw_header(self) -> None:
        ov = self.overview
        if ov is None:
            return
        page = self.query_one(ExplainGallery).page
        first = Text.assemble(
            (short_checkpoint(self.checkpoint), "bold"), f" · {ov.split} · {ov.size} samples · accuracy ",
            (f"{ov.accuracy:.3f}", "bold"), f" · {ov.mistakes} wrong",
        )
        if self.view.activations and page is not None:
            second = Text.assemble(("activations", "bold cyan"), f" of {page.layer}: the strongest channels of "
                                   f"sample {page.records[0]['index'] if page.records else '?'} (a or escape: back)")
        else:
            how = METHOD_NAMES.get(self.view.method, self.view.method)
            if self.view.method == "gradcam":
                how += f" at {self.view.layer}"
            target = "prediction" if self.view.target == "pred" else "true class"
            showing = self._mode_text()
            span = ""
            if page is not None and page.total:
                span = f" · {page.offset + 1}–{page.offset + len(page.tiles)} of {page.total}"
            second = Text.assemble((how, "bold cyan"), f" of the {target} · ", (showing, "bold"), span)
        self.query_one("#explain-header", Static).update(_lines(first, second))

    def _mode_text(self) -> str:
        if self.view.mode == "cell":
            return f"true {self.view.class_name}, predicted {self.view.predicted}"
        if self.view.mode == "class":
            return f"class {self.view.class_name}"
        return MODES.get(self.view.mode, self.view.mode)

    def _draw_detail(self) -> None:
        tile = self.query_one(ExplainGallery).selected_tile()
        detail = self.query_one("#explain-detail", Static)
        if tile is None or tile.record is None:
            hint = Text("channel maps: brighter = stronger activation", style="dim")
            detail.update(hint if self.view.activations else "")
            return
        rec = tile.record
        verdict = Text("✓ right", style="bold green") if rec["correct"] else Text("✗ wrong", style="bold red")
        first = Text.assemble(verdict, f"  sample #{rec['index']}: true ", (rec["label"], "bold"), ", predicted ",
                              (rec["pred"], "bold"), f" (p={rec['confidence']:.2f}), loss {rec['loss']:.3f}")
        top = " · ".join(f"{name} {p:.2f}" for name, p in rec.get("top", []))
        second = Text(f"top classes: {top}   map explains: {rec['target']}", style="dim")
        detail.update(_lines(first, second))

    # ---- actions ------------------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        gallery = self.query_one(ExplainGallery)
        page = gallery.page
        if page is None or not page.tiles:
            return
        index = gallery.selected + delta
        if 0 <= index < len(page.tiles):
            gallery.select(index)
            self._draw_detail()
        elif not self.view.activations:
            self.action_page(1 if delta > 0 else -1, select=0 if delta > 0 else -1)

    def action_step_row(self, delta: int) -> None:
        gallery = self.query_one(ExplainGallery)
        columns = gallery.layout_plan.columns if gallery.layout_plan else 1
        self.action_step(delta * columns)

    def action_page(self, delta: int, select: int = 0) -> None:
        gallery = self.query_one(ExplainGallery)
        page = gallery.page
        if page is None or self.view.activations:
            return
        capacity = gallery.layout_plan.capacity if gallery.layout_plan else max(1, len(page.tiles))
        offset = page.offset + delta * capacity
        if offset < 0 or offset >= page.total:
            self.notify("No more samples this way.", timeout=2)
            return
        self.view.offset = offset
        self.request_page(select)

    def action_cycle_method(self) -> None:
        if self.overview is None:
            return
        methods = self.overview.methods
        now = methods.index(self.view.method) if self.view.method in methods else -1
        self.view.method = methods[(now + 1) % len(methods)]
        self.view.activations = False
        self.request_page(self.query_one(ExplainGallery).selected)

    def action_pick_layer(self) -> None:
        ov = self.overview
        if ov is None:
            return
        if not ov.layers:
            self.notify("This model has no layer with a spatial output; saliency and Integrated Gradients need none.",
                        severity="warning")
            return
        from tui.screens.layer_picker import LayerPickerScreen

        def picked(layer: str | None) -> None:
            if layer is None or layer == self.view.layer:
                return
            self.view.layer = layer
            if not self.view.activations:
                self.view.method = "gradcam"
            self.request_page(self.query_one(ExplainGallery).selected)

        self.app.push_screen(LayerPickerScreen(ov.layers, ov.layer_labels, self.view.layer, ov.default_layer), picked)

    def action_toggle_target(self) -> None:
        self.view.target = "label" if self.view.target == "pred" else "pred"
        self.view.activations = False
        self.request_page(self.query_one(ExplainGallery).selected)

    def action_mistakes(self) -> None:
        self._show_mode("mistakes")

    def action_cycle_class(self) -> None:
        ov = self.overview
        if ov is None:
            return
        if self.view.mode == "per-class":
            self._show_mode("class", ov.class_names[0])
            return
        if self.view.mode != "class":
            self._show_mode("per-class")
            return
        k = ov.class_names.index(self.view.class_name) + 1 if self.view.class_name in ov.class_names else 0
        if k >= len(ov.class_names):
            self._show_mode("per-class")
        else:
            self._show_mode("class", ov.class_names[k])

    def _show_mode(self, mode: str, class_name: str | None = None, predicted: str | None = None) -> None:
        self.view.mode, self.view.class_name, self.view.predicted = mode, class_name, predicted
        self.view.offset = 0
        self.view.activations = False
        self.remove_class("-side-open")
        self.query_one(ExplainGallery).focus()
        self.request_page()

    def action_confusion(self) -> None:
        self.add_class("-side-open")
        self.query_one(ConfusionPicker).focus()

    @on(DataTable.CellSelected, "#confusion")
    def _cell_picked(self, event: DataTable.CellSelected) -> None:
        ov = self.overview
        cell = self.query_one(ConfusionPicker).cell_classes(event.coordinate.row, event.coordinate.column)
        if ov is None or cell is None:
            return
        true, pred = cell
        self._show_mode("cell", ov.class_names[true], ov.class_names[pred])

    def action_activations(self) -> None:
        if self.overview is None or self.overview.input_kind != "image" or not self.overview.layers:
            self.notify("Activations need an image model with a spatial layer.", severity="warning")
            return
        if self.view.activations:
            self.view.activations = False
            self.request_page()
            return
        if self.query_one(ExplainGallery).selected_tile() is None:
            return
        self._before_activations = (self.view.offset, self.query_one(ExplainGallery).selected)
        self.view.activations = True
        self.request_page()

    def action_back(self) -> None:
        if self.view.activations:
            self.view.activations = False
            offset, selected = self._before_activations
            self.view.offset = offset
            self.request_page(selected)
            return
        if self.has_class("-side-open") or self.focused is self.query_one(ConfusionPicker):
            self.remove_class("-side-open")
            self.query_one(ExplainGallery).focus()
            return
        if self.standalone or len(self.app.screen_stack) <= 1:
            self.app.exit()
        else:
            self.dismiss()
