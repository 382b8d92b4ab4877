"""A label for messages of any length in a narrow column: it never widens its panel and never cuts text.

A QLabel with word wrap keeps a long path (one "word") on one line, which either widens the Setup dock
(a horizontal scroll bar) or is cut at the dock's edge; without wrap, a long error is cut. This label
wraps at word boundaries or, for paths, anywhere; past `max_lines` it ends the last line with "…" and the
whole text is in its tooltip and copied by its context menu. `text()` is always the whole text.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QAction, QGuiApplication, QPainter, QTextLayout, QTextOption
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class FitLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None, *, max_lines: int = 4,
                 color: str = ""):
        super().__init__(parent)
        self.max_lines = max_lines
        self._cache: tuple = (None, None, [], False)       # (text, width) -> (lines, elided)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        if color:
            self.setStyleSheet(f"color: {color};")
        copy = QAction("Copy", self)
        copy.triggered.connect(lambda: QGuiApplication.clipboard().setText(self.text()))
        self.addAction(copy)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        super().setText(text or "")
        self.setToolTip(text or "")            # the whole text, also when the label shows all of it
        self.updateGeometry()
        self.update()

    # --- layout ---------------------------------------------------------------------------------
    def lines(self, width: int | None = None) -> tuple[list[str], bool]:
        """The lines drawn at `width` (the label's own by default) and whether the text was shortened."""
        width = max(int(self.contentsRect().width() if width is None else width), 8)
        text = self.text()
        if self._cache[:2] == (text, width):
            return self._cache[2], self._cache[3]
        paragraphs = text.split("\n") if text else []
        spans: list[tuple[int, int, int]] = []             # (paragraph, start, length)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        for index, paragraph in enumerate(paragraphs):
            layout = QTextLayout(paragraph, self.font())
            layout.setTextOption(option)
            layout.beginLayout()
            while True:
                line = layout.createLine()
                if not line.isValid():
                    break
                line.setLineWidth(width)
                spans.append((index, line.textStart(), line.textLength()))
            layout.endLayout()
            if not paragraph:
                spans.append((index, 0, 0))
        lines = [paragraphs[p][s:s + n].rstrip() for p, s, n in spans]
        elided = len(lines) > self.max_lines
        if elided:
            p, s, _ = spans[self.max_lines - 1]
            rest = " ".join([paragraphs[p][s:], *paragraphs[p + 1:]])
            lines = lines[:self.max_lines - 1] + [
                self.fontMetrics().elidedText(rest, Qt.TextElideMode.ElideRight, width)]
        self._cache = (text, width, lines, elided)
        return lines, elided

    def is_elided(self) -> bool:
        return self.lines()[1]

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        margins = self.contentsMargins()
        inner = width - margins.left() - margins.right()
        count = len(self.lines(inner)[0])
        return count * self.fontMetrics().lineSpacing() + margins.top() + margins.bottom()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        width = max(self.width(), 200)
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        width = self.fontMetrics().averageCharWidth() * 8
        return QSize(width, self.heightForWidth(self.width()) if self.text() else 0)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.heightForWidth(self.width()) != self.height():
            self.updateGeometry()          # a new width may need another number of lines

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        rect = self.contentsRect()
        step = self.fontMetrics().lineSpacing()
        for i, line in enumerate(self.lines()[0]):
            box = QRect(rect.left(), rect.top() + i * step, rect.width(), step)
            self.style().drawItemText(painter, box, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                                      self.palette(), self.isEnabled(), line, self.foregroundRole())
        painter.end()
