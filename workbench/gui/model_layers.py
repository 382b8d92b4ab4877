"""The Layers tab: the chosen model's layers and what each selected stage does with them.

One row per module that holds parameters, in definition order: the compressible layers (Linear, Conv1d,
Conv2d, Embedding: what the methods act on) with one column per pipeline stage saying "acts" or
"dense: <why>", and the modules whose parameters stay dense in every method (BatchNorm, LayerNorm, ...),
then the total. The model is built in the thread pool (`summarize`), never on the GUI thread; a Python
model only once "Allow code" is ticked, since building it runs the file. A failure is one line in the
table's place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.core.config import StageConfig
from workbench.core.errors import WorkbenchError
from workbench.data import tiny
from workbench.data.locate import canonical
from workbench.gui.messages import app_words
from workbench.gui.worker import TaskSignals, run_in_pool
from workbench.methods.per_layer import not_a_matrix
from workbench.models import zoo
from workbench.models.architecture import Architecture, build, parse_model_spec
from workbench.models.layers import compressible_layers, count_params, layer_kind, layer_type

# Input shape and classes of the named data sets, known without loading them (folder: / arrays: are not).
DATASET_SHAPES = {
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "tiny": ((1, tiny.SIDE, tiny.SIDE), tiny.NUM_CLASSES),
}
# Stages that need a plain weight matrix (per_layer.not_a_matrix); the others act on every compressible
# layer their `layers` knob selects.
MATRIX_METHODS = ("lowrank", "svd", "hashed", "funhash")
DEFAULT_SHAPE = ((1, 28, 28), 10)          # a Python model with a data set of unknown shape
_DENSE_TIP = ("Not a Linear, Conv1d, Conv2d or Embedding layer: its parameters stay dense in every method "
              "and count as they are.")


def dataset_shape(name: str) -> tuple[tuple[int, ...], int] | None:
    """(input shape, classes) of a named data set; None for folder:/arrays: sets (known once loaded)."""
    return DATASET_SHAPES.get(canonical(name or ""))


def shape_text(shape) -> str:
    return "×".join(str(s) for s in shape) if shape else "?"


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    shape: tuple        # the weight's shape; for a dense row, the shape of each parameter
    params: int
    compressible: bool
    kind: str = ""                     # "fc" | "conv" for a compressible layer
    not_matrix: str | None = None      # why low rank / SVD / hashing leave it dense (None: they can act)


@dataclass
class ModelSummary:
    spec: str
    label: str
    kind: str                          # Architecture.kind
    input_shape: tuple[int, ...] | None   # what the table was built for (a graph: its own input shape)
    num_classes: int | None
    declared_shape: tuple[int, ...] | None  # a graph file's own input shape (the data-set check)
    note: str                          # how the shape was chosen
    rows: list[LayerRow] = field(default_factory=list)
    total: int = 0


def summarize(arch: Architecture, known: tuple | None, allow_code: bool = False, dataset: str = "") -> ModelSummary:
    """Build the architecture and list its layers (runs in the thread pool). `known`: the chosen data
    set's (input shape, classes) when known without loading it."""
    later = "the data set's shape is known once it is loaded"
    if arch.kind in ("zoo", "python"):
        default = (tuple(zoo.default_input_shape(arch.name)), 10) if arch.kind == "zoo" else DEFAULT_SHAPE
        shape, classes = known or default
        note = (f"built for {dataset}: input {shape_text(shape)}, {classes} classes" if known else
                f"built at {'its default' if arch.kind == 'zoo' else 'an'} input {shape_text(shape)}, {classes} "
                f"classes ({later})")
    else:
        shape, classes, note = None, None, ""
    built = build(arch, shape, classes, allow_code=allow_code)
    model = built.module
    chosen = dict(compressible_layers(model))
    rows = []
    for name, module in model.named_modules():
        own = [p for _, p in module.named_parameters(recurse=False)]
        if name in chosen:
            rows.append(LayerRow(name, layer_type(module), tuple(module.weight.shape), sum(p.numel() for p in own),
                                 True, layer_kind(module), not_a_matrix(module)))
        elif own:
            shapes = tuple(tuple(p.shape) for p in own)
            rows.append(LayerRow(name or "(model)", type(module).__name__, shapes, sum(p.numel() for p in own), False))
    if not note:
        note = (f"from the file: input {shape_text(built.input_shape)}" if built.input_shape else
                "from the file (its input shape is not fixed)")
        note += f", {built.num_classes} outputs" if built.num_classes else ""
    return ModelSummary(arch.spec, arch.label, arch.kind, built.input_shape or shape, built.num_classes or classes,
                        built.input_shape if arch.kind not in ("zoo", "python") else None, note, rows,
                        count_params(model))


def stage_verdict(stage: StageConfig, row: LayerRow) -> str:
    """"acts", or "dense: <why>" for what `stage` does with the layer in `row`."""
    if not row.compressible:
        return "dense"
    if stage.method == "plain":
        return "dense: plain training compresses nothing"
    if stage.method in MATRIX_METHODS and row.not_matrix:
        return f"dense: {row.not_matrix}"
    which = str(stage.params.get("layers", "all") or "all").strip()
    if which in ("fc", "conv"):
        return "acts" if row.kind == which else f"dense: layers={which}"
    if which != "all" and row.name not in [s.strip() for s in which.split(",")]:
        return f"dense: not in layers={which}"
    return "acts"


def stage_titles(stages: list[StageConfig]) -> list[str]:
    return [s.method if len(stages) == 1 else f"{i}. {s.method}" for i, s in enumerate(stages, 1)]


class ModelLayers(QWidget):
    """The table; `set_model` (re)builds it in the background, `set_stages` redraws the stage columns."""

    # spec, the data set it was built for ('' for a graph, or a set of unknown shape), the graph's own input
    # shape (or None), the error line ('' when it built)
    inspected = Signal(str, str, object, str)

    COLUMNS = ("Layer", "Type", "Shape", "Parameters")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._key = None
        self._pending = False
        self._spec = ""
        self._built_for = ""
        self._summary: ModelSummary | None = None
        self._stages: list[StageConfig] = []
        self._signals = TaskSignals(self)
        self._signals.done.connect(self._built)
        self._signals.failed.connect(self._failed)

        layout = QVBoxLayout(self)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.title)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.setContentsMargins(8, 8, 8, 8)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.message)
        layout.addWidget(self.stack, 1)
        self._show_message("choose a model")

    # --- API ---------------------------------------------------------------------------------------
    @property
    def summary(self) -> ModelSummary | None:
        return self._summary

    @property
    def busy(self) -> bool:
        """A build is under way in the thread pool."""
        return self._pending

    def set_model(self, spec: str, dataset: str = "", allow_code: bool = False) -> None:
        """Show `spec`'s layers (a zoo key or a model file), built in the thread pool if it changed."""
        spec = (spec or "").strip()
        try:
            arch = parse_model_spec(spec)
        except WorkbenchError as exc:
            return self._settle(("error", spec, str(exc)), spec, str(exc))
        if arch.runs_code and not allow_code:
            why = (f"{arch.label} is Python code: building it runs {arch.path.name}, so its layers are listed "
                   "once \"Allow code\" is ticked")
            return self._settle(("code", spec), spec, "", why)
        known = dataset_shape(dataset) if arch.kind in ("zoo", "python") else None
        try:
            stamp = arch.path.stat().st_mtime_ns if arch.path is not None else None
        except OSError:
            stamp = None
        key = (spec, known and dataset, known, allow_code and arch.runs_code, stamp)
        if key == self._key:
            return
        self._key, self._spec, self._summary = key, spec, None
        self._built_for = dataset if known else ""
        self._pending = True
        self._show_message(f"reading {arch.label}…")
        run_in_pool(lambda: summarize(arch, known, allow_code, dataset), key, self._signals)

    def set_stages(self, stages: list[StageConfig]) -> None:
        self._stages = list(stages)
        if self._summary is not None:
            self._fill()

    def verdicts(self, layer: str) -> list[str]:
        """What each stage does with `layer` (tests and tooltips)."""
        row = next(r for r in self._summary.rows if r.name == layer)
        return [stage_verdict(s, row) for s in self._stages]

    # --- internals ---------------------------------------------------------------------------------
    def _settle(self, key, spec: str, error: str, text: str = "") -> None:
        """No build: a spec that does not parse, or Python code not allowed yet."""
        if key == self._key:
            return
        self._key, self._spec, self._summary, self._pending = key, spec, None, False
        self._show_message(text or error)
        self.inspected.emit(spec, "", None, error)

    def _show_message(self, text: str) -> None:
        """`text` in the table's place, naming the app's controls rather than the core's CLI flags (the
        `inspected` signal keeps the core's words: its receivers translate what they show)."""
        self.title.setText("")
        self.message.setText(app_words(text))
        self.stack.setCurrentWidget(self.message)

    def _built(self, key, summary: ModelSummary) -> None:
        if key != self._key:
            return          # the model field changed meanwhile
        self._summary, self._pending = summary, False
        self._fill()
        self.inspected.emit(summary.spec, self._built_for, summary.declared_shape, "")

    def _failed(self, key, message: str) -> None:
        if key != self._key:
            return
        self._pending = False
        self._show_message(message)
        self.inspected.emit(self._spec, self._built_for, None, message)

    def _fill(self) -> None:
        s = self._summary
        compressible = [r for r in s.rows if r.compressible]
        inside = sum(r.params for r in compressible)
        label, note = escape(s.label, quote=False), escape(s.note, quote=False)
        self.title.setText(f"<b>{label}</b> ({s.kind}), {note}. {s.total:,} parameters: {inside:,} in "
                           f"{len(compressible)} compressible layers, {s.total - inside:,} stay dense.")
        titles = stage_titles(self._stages)
        table = self.table
        table.setUpdatesEnabled(False)
        table.clear()
        table.setColumnCount(len(self.COLUMNS) + len(titles))
        table.setHorizontalHeaderLabels([*self.COLUMNS, *titles])
        for i, stage in enumerate(self._stages):
            item = table.horizontalHeaderItem(len(self.COLUMNS) + i)
            item.setToolTip(f"What stage {i + 1} ({stage.method}) does with each layer")
        table.setRowCount(len(s.rows) + 1)
        grey = QBrush(QColor("#707070"))
        green = QBrush(QColor("#1b7a2e"))
        for r, row in enumerate(s.rows):
            shape = shape_text(row.shape) if row.compressible else ", ".join(shape_text(p) for p in row.shape)
            cells = [row.name, row.type, shape, f"{row.params:,}"]
            cells += [stage_verdict(stage, row) for stage in self._stages]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 3:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if not row.compressible:
                    item.setForeground(grey)
                    item.setToolTip(_DENSE_TIP)
                elif c >= len(self.COLUMNS):
                    item.setForeground(green if text == "acts" else grey)
                    item.setToolTip(f"{row.name}: {text}")
                table.setItem(r, c, item)
        bold = QFont()
        bold.setBold(True)
        total = ["total", "", "", f"{s.total:,}"] + [self._stage_total(stage) for stage in self._stages]
        for c, text in enumerate(total):
            item = QTableWidgetItem(text)
            item.setFont(bold)
            if c == 3:
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            table.setItem(len(s.rows), c, item)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        table.resizeColumnsToContents()
        for c in range(len(self.COLUMNS), table.columnCount()):   # long reasons: elided, whole in the tooltip
            table.setColumnWidth(c, min(table.columnWidth(c), 260))
        header.setStretchLastSection(True)
        table.setUpdatesEnabled(True)
        self.stack.setCurrentWidget(table)

    def _stage_total(self, stage: StageConfig) -> str:
        rows = [r for r in self._summary.rows if stage_verdict(stage, r) == "acts"]
        return f"acts on {sum(r.params for r in rows):,}"
