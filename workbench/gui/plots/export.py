"""Save a plot as PNG or SVG, chosen by the file suffix (pyqtgraph's exporters)."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

FORMATS = {".png": pg_exporters.ImageExporter, ".svg": pg_exporters.SVGExporter}


def _export_target(obj):
    """What the exporter should draw: a plot item, a layout's central item, or a widget's scene."""
    if hasattr(obj, "export_item"):              # the workbench plot widgets
        return obj.export_item()
    if isinstance(obj, pg.PlotWidget):
        return obj.getPlotItem()
    if isinstance(obj, pg.GraphicsLayoutWidget):
        return obj.ci
    if isinstance(obj, pg.GraphicsView):
        return obj.scene()
    if isinstance(obj, QtWidgets.QWidget):       # any container: its first pyqtgraph view
        views = obj.findChildren(pg.GraphicsView)
        if views:
            return _export_target(views[0])
    if isinstance(obj, (pg.GraphicsItem, QtWidgets.QGraphicsItem, QtWidgets.QGraphicsScene)):
        return obj
    raise TypeError(f"cannot export {type(obj).__name__}: expected a pyqtgraph plot, item or widget")


def export_plot(plot_item_or_widget, path) -> Path:
    """Write the plot to `path` (.png or .svg); returns the path written."""
    path = Path(path)
    exporter_cls = FORMATS.get(path.suffix.lower())
    if exporter_cls is None:
        raise ValueError(f"cannot export to '{path.name}': unknown format '{path.suffix}', "
                         f"use one of {', '.join(FORMATS)}")
    target = _export_target(plot_item_or_widget)
    exporter = exporter_cls(target)
    if exporter_cls is pg_exporters.ImageExporter:
        # A plot that was never shown may report a tiny size; export at least a readable 900 px.
        width = int(exporter.parameters()["width"])
        if width < 900:
            exporter.parameters()["width"] = 900
        exporter.export(str(path))
    else:
        try:
            exporter.export(str(path))
        except ValueError:
            # pyqtgraph 0.14's SVG post-processing cannot parse the closed paths ("... Z") that newer
            # Qt writes (pyqtgraph issue #3495); Qt's own SVG generator draws the same scene correctly.
            _qt_svg(target, path)
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"export to {path} produced no file")
    return path


def _qt_svg(target, path: Path) -> None:
    scene = target if isinstance(target, QtWidgets.QGraphicsScene) else target.scene()
    source = scene.sceneRect() if target is scene else target.sceneBoundingRect()
    generator = QtSvg.QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(source.size().toSize())
    generator.setViewBox(QtCore.QRectF(0, 0, source.width(), source.height()))
    generator.setTitle(path.stem)
    painter = QtGui.QPainter(generator)
    try:
        scene.render(painter, QtCore.QRectF(0, 0, source.width(), source.height()), source)
    finally:
        painter.end()
