"""Compression Workbench: compress neural networks and compare compression methods side by side."""

__version__ = "0.1.0"
