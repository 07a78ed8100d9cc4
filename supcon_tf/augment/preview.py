"""A picture of what an augmenter does: each image beside a few of its augmented views."""

import math
from pathlib import Path

import numpy as np
import tensorflow as tf


def augmentation_grid(images, augmenter, num_views=2, min_side=64):
    """Returns an image grid: one row per image, the original then `num_views` views.

    Args:
        images: `[N, H, W, C]` float images in `[0, 1]` (C = 1 or 3).
        augmenter: a layer from `build_augmenter` (or any image-to-image layer).
        num_views: augmented views per image.
        min_side: cells are enlarged (nearest neighbour) to at least this many pixels.

    Returns:
        uint8 array `[rows, columns, 3]` with 2-pixel white gutters.

    Example:

    >>> import numpy as np
    >>> from supcon_tf.augment import build_augmenter
    >>> grid = augmentation_grid(np.zeros((2, 8, 8, 3)), build_augmenter("none"), 3, 8)
    >>> grid.shape
    (22, 42, 3)
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must have shape [N, H, W, 1 or 3], got shape {images.shape}.")
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"`num_views` must be a positive integer, got {num_views!r}.")
    columns = [images] + [
        np.asarray(augmenter(images, training=True), np.float32) for _ in range(num_views)
    ]
    height = max(column.shape[1] for column in columns)
    width = max(column.shape[2] for column in columns)
    scale = max(1, math.ceil(min_side / min(height, width)))
    gutter = 2
    cell_height, cell_width = height * scale, width * scale
    grid = np.full(
        (
            len(images) * (cell_height + gutter) + gutter,
            len(columns) * (cell_width + gutter) + gutter,
            3,
        ),
        255,
        np.uint8,
    )
    for column_index, column in enumerate(columns):
        cells = np.clip(column, 0.0, 1.0)
        cells = np.repeat(np.repeat(cells, scale, axis=1), scale, axis=2)
        cells = np.broadcast_to(cells, (*cells.shape[:3], 3)) if cells.shape[-1] == 1 else cells
        cells = np.round(cells * 255).astype(np.uint8)
        for row_index, cell in enumerate(cells):
            top = gutter + row_index * (cell_height + gutter)
            left = gutter + column_index * (cell_width + gutter)
            grid[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    return grid


def save_augmentation_grid(images, augmenter, num_views, path, min_side=64):
    """Writes `augmentation_grid(images, augmenter, num_views)` as a PNG file.

    Args:
        images: `[N, H, W, C]` float images in `[0, 1]`.
        augmenter: a layer from `build_augmenter`.
        num_views: augmented views per image.
        path: output `.png` path; parent folders are created.
        min_side: cells are enlarged to at least this many pixels.

    Returns:
        The path written, as a `pathlib.Path`.

    Example:

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "views.png")
    >>> images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    >>> from supcon_tf.augment import build_augmenter
    >>> written = save_augmentation_grid(images, build_augmenter("simple", seed=0), 2, path)
    >>> os.path.getsize(path) > 0
    True
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`path` must end in .png, got {str(path)!r}.")
    grid = augmentation_grid(images, augmenter, num_views, min_side)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(grid).numpy())
    return path
