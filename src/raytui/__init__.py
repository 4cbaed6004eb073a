"""raytui: a terminal console for a Ray GPU cluster."""

__version__ = "0.1.0"
