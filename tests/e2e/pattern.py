"""The fake webcam's picture: a known moving test pattern, shared by the writer in the guest
(fakecam.py) and the host's reference computation (prepare.py).

A smooth colour gradient carries the colour: its chroma changes slowly, so the 4:2:0 chroma
subsampling of the YUV device format barely touches it. On top of it a grey checkerboard of
8-px squares moves 2 px right and 1 px down per frame: hard luma edges, which a sharpening model
visibly changes. The picture repeats every PHASES frames, so the host can precompute what every
published frame must look like.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 10.0
PHASES = 16  # x moves 2 px/frame over a 16-px period (8 frames), y 1 px/frame over 16 px
CELL = 8
CONTRAST = 25  # +-25 grey levels around the gradient: overshoots of a sharpener mostly fit


def frame(k: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame `k` (taken modulo PHASES) as a BGR uint8 image of height x width."""
    k %= PHASES
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            60 + 100 * x / width,  # blue grows to the right
            100 + 60 * y / height,  # green grows downwards
            160 - 100 * x / width,
        ],
        -1,
    )  # red shrinks to the right
    checker = (((x - 2 * k) // CELL + (y - k) // CELL) % 2) * 2 - 1
    return np.clip(base + CONTRAST * checker[..., None], 0, 255).round().astype(np.uint8)
