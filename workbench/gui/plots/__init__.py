"""Plot widgets: they only draw RunTraces (no file access, no heavy computation) and update in place."""

from workbench.gui.plots.curves import CurvesPlot
from workbench.gui.plots.export import export_plot
from workbench.gui.plots.hashing_plot import HashingPlot
from workbench.gui.plots.histogram import HistogramView
from workbench.gui.plots.kept_bars import KeptBars
from workbench.gui.plots.mixture_plot import MixturePlot
from workbench.gui.plots.published import PUBLISHED, Published, published_for
from workbench.gui.plots.ratio_plot import RatioPlot
from workbench.gui.plots.spectrum_plot import SpectrumPlot

__all__ = ["CurvesPlot", "HashingPlot", "HistogramView", "KeptBars", "MixturePlot", "PUBLISHED", "Published", "RatioPlot",
           "SpectrumPlot", "export_plot", "published_for"]
