"""A second degradation family, built apart from `distill.degrade`, to check generalisation.

A model that scores well only on the degradations it was trained on has learned those
operators, not webcams. This family never feeds training: it uses other operators and ranges
that deliberately step outside the training defaults, in a fixed order, seeded per image like
the benchmark degradation:

- an *elliptical* lens blur (two sigmas, 0.3-2.8 px, at a random angle), where training blurs
  are round or linear;
- the camera's own sharpening (an unsharp mask, amount 0.3-1.2) that leaves halos, which no
  training chain has;
- a sensor read at 0.35-0.6 of the size and scaled back with Lanczos or nearest neighbour
  (training: 0.45-0.9, bilinear or bicubic);
- noise in YCrCb, luma sigma 2-9 and chroma sigma up to 4 (training: RGB, sigma 1-6);
- WebP at quality 15-60 (training: JPEG and H.264).

`unseen_degrade(img, index)` is the whole chain for the `index`-th image of a set; `without=`
one of STAGES leaves that stage out and every other draw as it was, which shows what each stage
costs a model (benchmarks/unseen_stages.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from distill.degrade import down_up

UNSEEN_SEED = 20261201
STAGES = ("lens blur", "in-camera sharpening", "small sensor", "noise", "WebP")


def _elliptical_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s1, s2 = rng.uniform(0.3, 2.8), rng.uniform(0.3, 1.4)
    angle = rng.uniform(0, np.pi)
    r = int(np.ceil(3 * max(s1, s2)))
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    kernel = np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _in_camera_sharpening(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    soft = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6), borderType=cv2.BORDER_REFLECT)
    return img + rng.uniform(0.3, 1.2) * (img - soft)


def _small_sensor(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = rng.uniform(0.35, 0.6)
    return down_up(img, f, cv2.INTER_LANCZOS4 if rng.random() < 0.7 else cv2.INTER_NEAREST)


def _ycrcb_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ycc = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_BGR2YCrCb)
    sigmas = np.array([rng.uniform(2, 9), rng.uniform(0, 4), rng.uniform(0, 4)], np.float32) / 255
    ycc += rng.normal(0, 1, ycc.shape).astype(np.float32) * sigmas
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def _webp(img8: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".webp", img8, [cv2.IMWRITE_WEBP_QUALITY, quality])
    assert ok, "OpenCV failed to encode WebP"
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def unseen_degrade(img: np.ndarray, index: int, without: str | None = None) -> np.ndarray:
    """The fixed second-family degradation of the `index`-th image (uint8 BGR in and out),
    optionally `without` one of STAGES (its random draws are still made)."""
    if without is not None and without not in STAGES:
        raise ValueError(f"no stage {without!r} in the unseen family; stages: {', '.join(STAGES)}")

    def apply(stage: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        return x if stage == without else out

    rng = np.random.default_rng([UNSEEN_SEED, index])
    x = img.astype(np.float32) / 255
    x = apply("lens blur", x, _elliptical_blur(x, rng))
    if rng.random() < 0.6:
        x = apply("in-camera sharpening", x, _in_camera_sharpening(x, rng))
    if rng.random() < 0.5:
        x = apply("small sensor", x, _small_sensor(x, rng))
    x = apply("noise", x, _ycrcb_noise(x, rng))
    x8 = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    return apply("WebP", x8, _webp(x8, int(rng.integers(15, 61))))
