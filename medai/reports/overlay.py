"""Overlay pictures: a label map drawn over its image, a grid of short-axis slices at one cardiac phase.

Pixels are shown as stored (rows down, columns right: the DICOM display orientation of the source images); each
segment is filled semi-transparently and outlined in its label-table colour; the field of view is cropped around
the heart (the same box at every phase). Drawn with numpy and Pillow (no matplotlib: the overlays are on the
analysis' critical path). Slices are chosen from base to apex
among those with any segment at that phase, mid-ventricular ones first when there are more than fit the grid.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medai.domain.volume import LabelMap, Volume
from medai.errors import InputValidationError
from medai.percentiles import percentiles

logger = logging.getLogger(__name__)


def pick_slices(labels: np.ndarray, n: int = 6) -> list[int]:
    """Up to ``n`` slice indices, evenly spread over the slices that hold any label (mid-ventricular kept).

    Args:
        labels: ``(Z, Y, X)`` label array of one phase.
        n: how many slices at most.

    Returns:
        Sorted slice indices; the middle slices of the volume when no slice holds a label.
    """
    z_any = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    if z_any.size == 0:
        z_any = np.arange(labels.shape[0])
    if z_any.size <= n:
        return [int(z) for z in z_any]
    picks = np.linspace(z_any[0], z_any[-1], n + 2)[1:-1] if z_any.size > n + 2 else np.linspace(
        z_any[0], z_any[-1], n)
    chosen = sorted({int(z_any[np.argmin(np.abs(z_any - p))]) for p in picks})
    return chosen


def _window(image: np.ndarray) -> tuple[float, float]:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = percentiles(finite, [1.0, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def crop_box(labels: np.ndarray, margin: float = 0.6, min_size: int = 32) -> tuple[int, int, int, int]:
    """In-plane box ``(y0, y1, x0, x1)`` around every labelled pixel of ``labels`` (``(..., Y, X)``), widened by
    ``margin`` times its size on each side and to at least ``min_size`` pixels; the whole plane when unlabelled."""
    ny, nx = labels.shape[-2:]
    fg = labels.reshape(-1, ny, nx).any(axis=0)
    if not fg.any():
        return 0, ny, 0, nx
    ys, xs = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))

    def span(lo: int, hi: int, size: int) -> tuple[int, int]:
        extent = hi - lo + 1
        half = max(extent * (0.5 + margin), min_size / 2)
        centre = (lo + hi + 1) / 2
        a, b = int(np.floor(centre - half)), int(np.ceil(centre + half))
        return max(0, a), min(size, b)

    y0, y1 = span(int(ys[0]), int(ys[-1]), ny)
    x0, x1 = span(int(xs[0]), int(xs[-1]), nx)
    return y0, y1, x0, x1


def _edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def overlay_png(
    image: Volume,
    label_map: LabelMap,
    frame: int,
    *,
    path: Path | str | None = None,
    slices: Sequence[int] | None = None,
    n_slices: int = 6,
    title: str = "",
    alpha: float = 0.35,
    box: tuple[int, int, int, int] | None = None,
    tile_px: int = 220,
) -> bytes:
    """A grid of slices of ``image`` at ``frame`` with ``label_map`` drawn over them (filled and outlined).

    Args:
        image: ``(T, Z, Y, X)`` or ``(Z, Y, X)`` float image in the label map's geometry.
        label_map: label map of the same shape; colours and names come from its label table.
        frame: time index (ignored for static volumes).
        path: also write the PNG there.
        slices: slice indices to show (default: :func:`pick_slices`).
        n_slices: how many slices when choosing.
        title: caption drawn above the grid (e.g. ``"ED (frame 0, 0 ms)"``).
        alpha: fill opacity of the segments.
        box: in-plane crop ``(y0, y1, x0, x1)``; default: :func:`crop_box` of the whole label map (all frames),
            so ED and ES pictures show the same field of view.
        tile_px: approximate width of one slice tile in the picture (pixels are repeated, never interpolated).

    Returns:
        PNG bytes (RGB).

    Raises:
        InputValidationError: the image and the label map do not have the same shape.
    """
    from PIL import Image, ImageDraw, ImageFont

    img = image.array[frame] if image.is_temporal else image.array
    lab = label_map.volume.array[frame] if label_map.volume.is_temporal else label_map.volume.array
    if img.shape != lab.shape:
        raise InputValidationError(
            f"image {img.shape} and label map {lab.shape} differ at frame {frame}: overlays need the label map in "
            "the image's geometry", details=[{"field": "label_map", "problem": "shape", "value": list(lab.shape)}])
    zs = list(slices) if slices is not None else pick_slices(lab, n_slices)
    y0, y1, x0, x1 = box if box is not None else crop_box(label_map.volume.array)
    lo, hi = _window(img[zs][:, y0:y1, x0:x1] if zs else img)
    _, dy, dx = image.spacing
    # integer pixel repeats per axis so square millimetres stay square (anisotropic pixels allowed)
    base = max(1, int(round(tile_px / max(1, (x1 - x0)))))
    ry = max(1, int(round(base * (dy / dx)))) if dx > 0 else base
    rx = base
    tiles = []
    for z in zs:
        grey = np.clip((img[z, y0:y1, x0:x1] - lo) / (hi - lo), 0.0, 1.0)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        for seg in label_map.labels:
            m = lab[z, y0:y1, x0:x1] == seg.value
            if m.any():
                colour = np.asarray(seg.color, dtype=float) / 255.0
                rgb[m] = (1 - alpha) * rgb[m] + alpha * colour
                rgb[_edges(m)] = colour
        tile = np.repeat(np.repeat(rgb, ry, axis=0), rx, axis=1)
        tiles.append((z, (tile * 255).astype(np.uint8)))
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    ncol = min(3, max(1, len(tiles)))
    nrow = int(np.ceil(len(tiles) / ncol)) if tiles else 1
    th, tw = (tiles[0][1].shape[:2] if tiles else (tile_px, tile_px))
    gap, head, label_h, foot = 6, (30 if title else 6), 18, 28
    width = ncol * tw + (ncol + 1) * gap
    height = head + nrow * (th + label_h + gap) + foot
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((width / 2, 6), title, fill="black", font=font, anchor="mt")
    for i, (z, tile) in enumerate(tiles):
        r, c = divmod(i, ncol)
        left = gap + c * (tw + gap)
        top = head + r * (th + label_h + gap)
        draw.text((left + tw / 2, top + 1), f"slice {z + 1} of {lab.shape[0]}", fill="black", font=small,
                  anchor="mt")
        canvas.paste(Image.fromarray(tile), (left, top + label_h))
    # legend
    x = gap
    y = height - foot + 8
    for seg in label_map.labels:
        name = seg.property_type.meaning or seg.name
        draw.rectangle([x, y, x + 14, y + 12], fill=tuple(int(v) for v in seg.color))
        draw.text((x + 19, y - 1), name, fill="black", font=small)
        x += 19 + int(draw.textlength(name, font=small)) + 16
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


__all__ = ["crop_box", "overlay_png", "pick_slices"]
