"""Pictures as pure functions: overlays, colourised masks, thumbnails (:mod:`.draw`, numpy only,
re-exported here) and plotly figures (:mod:`.plots`, imported on its own: ``from seglib.viz import plots``)."""
from __future__ import annotations

from .draw import (
    MODES,
    View,
    colorize,
    contours,
    encode,
    legend_html,
    overlay,
    render,
    thumbnail,
    thumbnail_pair,
    tile,
    to_rgb,
)

__all__ = ["MODES", "View", "colorize", "contours", "encode", "legend_html", "overlay", "render", "thumbnail",
           "thumbnail_pair", "tile", "to_rgb"]
