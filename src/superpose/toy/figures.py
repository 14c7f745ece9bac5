"""Colour maps and overlays for phase diagrams (matplotlib and plotly share them)."""

from __future__ import annotations

import numpy as np

from superpose.toy.metrics import SOLUTION_CLASSES

CLASS_COLOURS = {
    "not_learned": "#d9dbe0", "dedicated": "#1a21f5", "antipodal": "#f71230", "aligned": "#2ca02c", "other": "#ff9f1c",
}
_CORNERS = {  # the seed's 2-D colour map: (‖W₂‖, superposition) corners
    "high_norm_low_superposition": (0.10, 0.13, 0.96), "high_norm_high_superposition": (0.97, 0.07, 0.18),
    "low_norm_low_superposition": (0.84, 0.85, 0.88), "low_norm_high_superposition": (0.97, 0.94, 0.95),
}


def phase_rgb(norm: np.ndarray, superposition: np.ndarray) -> np.ndarray:
    """The seed's bilinear colour map: blue = ‖W₂‖ high and not superposed, red = both high."""
    n = 1.0 - np.clip(norm, 0.0, 1.0)[..., None]
    s = np.clip(superposition, 0.0, 1.0)[..., None]
    c = {k: np.asarray(v) for k, v in _CORNERS.items()}
    rgb = ((1 - n) * (1 - s) * c["high_norm_low_superposition"] + (1 - n) * s * c["high_norm_high_superposition"]
           + n * (1 - s) * c["low_norm_low_superposition"] + n * s * c["low_norm_high_superposition"])
    return np.clip(rgb, 0.0, 1.0)


def class_rgb(classes: np.ndarray) -> np.ndarray:
    """RGB per cell from solution-class indices."""
    table = np.array([[int(CLASS_COLOURS[c][i:i + 2], 16) / 255 for i in (1, 3, 5)] for c in SOLUTION_CLASSES])
    return table[np.asarray(classes, int)]


def css(rgb: np.ndarray) -> list[str]:
    """CSS colour strings for an (..., 3) array in [0, 1]."""
    values = np.round(np.asarray(rgb).reshape(-1, 3) * 255).astype(int)
    return [f"rgb({r},{g},{b})" for r, g, b in values]


def boundary_segments(labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges between differently labelled neighbours, as polyline coordinates with NaN breaks.

    labels: (len(y), len(x)) on a grid of log-spaced centres x, y; edges sit at geometric midpoints.
    """
    def edges(c):
        mid = np.sqrt(c[1:] * c[:-1])
        return np.concatenate([[c[0] ** 2 / mid[0]], mid, [c[-1] ** 2 / mid[-1]]])

    ex, ey = edges(np.asarray(x, float)), edges(np.asarray(y, float))
    xs, ys = [], []
    rows, cols = labels.shape
    for i in range(rows):
        for j in range(cols - 1):
            if labels[i, j] != labels[i, j + 1]:
                xs += [ex[j + 1], ex[j + 1], np.nan]
                ys += [ey[i], ey[i + 1], np.nan]
    for i in range(rows - 1):
        for j in range(cols):
            if labels[i, j] != labels[i + 1, j]:
                xs += [ex[j], ex[j + 1], np.nan]
                ys += [ey[i + 1], ey[i + 1], np.nan]
    return np.asarray(xs), np.asarray(ys)


def legend_image(resolution: int = 64) -> np.ndarray:
    """The seed's colour-map legend: rows ‖W₂‖ from 0 (bottom) to 1, columns superposition 0 → 1."""
    superposition, norm = np.meshgrid(np.linspace(0, 1, resolution), np.linspace(0, 1, resolution))
    return phase_rgb(norm, superposition)
