"""Overlays and colourised masks as pure numpy functions (pages only display the arrays)."""
from __future__ import annotations

import numpy as np

from .data.classmap import ClassMap


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> (H, W, 3)."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def colorize(mask: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """uint8 (H, W) class ids -> (H, W, 3) colours of the class map (unknown = magenta)."""
    return class_map.lut()[mask]


def overlay(image: np.ndarray, mask: np.ndarray | None, class_map: ClassMap, alpha: float = 0.5,
            visible: list[int] | None = None) -> np.ndarray:
    """Blend the colourised mask over the image.

    Args:
        alpha: mask opacity, 0 (image only) to 1 (mask only).
        visible: class ids to draw; others show the bare image. None draws every class.
    Returns:
        uint8 (H, W, 3).
    """
    rgb = to_rgb(image)
    if mask is None or alpha <= 0:
        return rgb.copy()
    colors = colorize(mask, class_map).astype(np.float32)
    draw = np.ones(mask.shape, bool) if visible is None else np.isin(mask, list(visible))
    out = rgb.astype(np.float32)
    out[draw] = (1 - alpha) * out[draw] + alpha * colors[draw]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def tile(images: list[np.ndarray], cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Lay (H, W, 3) images of one size out in a grid."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), fill, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = to_rgb(im)
    return out


def class_share_figure(per_class, title: str = "Pixel share per class"):
    """Horizontal bar chart of ``stats.per_class()`` in the class colours (plotly)."""
    import plotly.graph_objects as go

    df = per_class.iloc[::-1]
    colors = ["#BBBBBB" if c == "#000000" else c for c in df["color"]]  # black bars vanish on dark themes
    fig = go.Figure(go.Bar(
        x=df["pixel_fraction"], y=df["name"], orientation="h", marker_color=colors,
        customdata=df[["pixels", "images_with_class"]].to_numpy(),
        text=[f"{v:.2%}" for v in df["pixel_fraction"]], textposition="auto",
        hovertemplate="%{y}: %{x:.2%} of pixels<br>%{customdata[0]:,} px in %{customdata[1]:,} images<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_tickformat=".0%", height=60 + 32 * len(df), margin=dict(l=10, r=10, t=40, b=10))
    return fig
