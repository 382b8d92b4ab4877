"""Plot widgets: they only draw RunTraces (no file access, no heavy computation) and update in place."""

from .curves import CurvesPlot
from .export import export_plot
from .hashing_plot import HashingPlot
from .histogram import HistogramView
from .kept_bars import KeptBars
from .mixture_plot import MixturePlot
from .published import PUBLISHED, Published, published_for
from .ratio_plot import RatioPlot
from .spectrum_plot import SpectrumPlot

__all__ = ["CurvesPlot", "HashingPlot", "HistogramView", "KeptBars", "MixturePlot", "PUBLISHED", "Published", "RatioPlot",
           "SpectrumPlot", "export_plot", "published_for"]
