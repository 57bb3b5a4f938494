"""Overlay colours (exact) and that the figure files are written."""

from __future__ import annotations

import numpy as np
import pytest

from scarceseg.figures.overlays import (
    OVERLAP_RGB,
    PRED_RGB,
    TRUTH_RGB,
    overlay_rgb,
    save_boxplot,
    save_contact_sheet,
    save_overlay_grid,
    window,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _masks() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((8, 8), dtype=bool)
    pred = np.zeros((8, 8), dtype=bool)
    truth[1:5, 1:5] = True
    pred[3:7, 3:7] = True
    return truth, pred


def test_fill_colours_exact():
    truth, pred = _masks()
    rgb = overlay_rgb(np.zeros((8, 8)), truth, pred, alpha=0.5, outline=False)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[1, 1]) == (106, 47, 0)  # truth only: half of vermillion (213, 94, 0), truncated
    assert tuple(rgb[6, 6]) == (0, 57, 89)  # prediction only: half of blue (0, 114, 178)
    assert tuple(rgb[3, 3]) == (120, 114, 33)  # overlap: half of yellow (240, 228, 66)
    assert tuple(rgb[0, 7]) == (0, 0, 0)  # neither: the (constant) grey


def test_outline_pure_colours_over_grey():
    truth, pred = _masks()
    image = np.tile(np.linspace(0, 1, 8), (8, 1))
    rgb = overlay_rgb(image, truth, pred).astype(int)
    assert tuple(rgb[1, 1]) == TRUTH_RGB  # truth edge
    assert tuple(rgb[6, 6]) == PRED_RGB  # prediction edge
    assert tuple(rgb[3, 3]) == OVERLAP_RGB  # edge of both, inside both
    r, g, b = rgb[2, 2]  # inside truth only, not on an edge: vermillion tints the grey
    assert r > g > b
    grey = rgb[0, 6]
    assert grey[0] == grey[1] == grey[2] > 0


def test_overlay_without_masks_is_grey_and_shapes_are_checked():
    image = np.arange(16.0).reshape(4, 4)
    rgb = overlay_rgb(image)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    with pytest.raises(ValueError, match="truth shape"):
        overlay_rgb(image, truth=np.zeros((3, 3), bool))


def test_window_percentiles():
    ramp = np.arange(101.0).reshape(1, 101)
    w = window(ramp)
    assert w[0, 0] == 0 and w[0, -1] == 255 and w[0, 1] == 0 and w[0, 99] == 255
    assert not window(np.full((3, 3), 7.0)).any()


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


def test_overlay_grid_written(tmp_path):
    truth, pred = _masks()
    rng = np.random.default_rng(0)
    items = [(f"case {i}\nDice 0.5", rng.random((8, 8)), truth, pred if i else None) for i in range(3)]
    path = save_overlay_grid(items, tmp_path / "sub" / "grid.png", ncols=2, title="test")
    assert path == tmp_path / "sub" / "grid.png" and _is_png(path)
    with pytest.raises(ValueError):
        save_overlay_grid([], tmp_path / "empty.png")


def test_contact_sheet_written(tmp_path):
    truth, pred = _masks()
    path = save_contact_sheet(np.ones((8, 8)), [truth, pred, truth & pred], tmp_path / "sheet.png")
    assert _is_png(path)
    with pytest.raises(ValueError, match="titles"):
        save_contact_sheet(np.ones((8, 8)), [truth], tmp_path / "bad.png", titles=["a", "b"])


def test_boxplot_written(tmp_path):
    values = {"multi_otsu": np.array([0.1, 0.5, 0.7, np.nan]), "kmeans": [0.2, 0.4], "empty": []}
    path = save_boxplot(values, tmp_path / "box.png", ylabel="Dice")
    assert _is_png(path)
