"""Webcam-like degradations of clean images, seeded and reproducible.

A webcam in a video call loses detail in a fixed physical order: the lens (defocus), the hand or
the head moving during the exposure (motion blur), a small sensor read out and scaled
(down-then-up), too few photons (shot + read noise), and finally the encoder that squeezes the
frame into the call's bitrate (JPEG / H.264). The optical and sensor stages are applied in a
random order with random strength, noise follows them, and compression is always last, because
that is where it sits in every real capture chain.

Ranges (each stage fires with probability ``p``; "wide" is `WIDE_MIX`, where it departs from
the benchmark's):

====================  ====  ==========================================================
stage                 p     strength
====================  ====  ==========================================================
defocus               0.7   Gaussian sigma 0.6–2.2 px, or a disk of radius 1.0–3.0 px
motion                0.35  linear kernel 3–11 px at any angle, or a random camera
                            trajectory (random walk) inside a 5–13 px square
down-then-up scaling  0.5   factor 0.45–0.9, area down, bilinear or bicubic up
noise                 0.8   Poisson (peak 60–600 photons at white) then Gaussian
                            sigma 1–6 (on 0–255), luma-correlated across channels
ISP sharpening        0     wide: 0.4, luma unsharp mask after the noise, sigma
                            0.5–1.5 px, amount 0.2–1.0 (the halos most webcams add)
compression           0.85  JPEG quality 35–90 (60 %) or H.264 CRF 26–38 (40 %);
                            wide: JPEG 20–90, CRF 26–42 (a call's low bitrates)
sharp camera          0     sharp: 0.3, a chain without defocus, motion and scaling,
                            noisy with probability 0.3 (a good webcam in good light)
====================  ====  ==========================================================

`degrade(img, rng, mix)` draws one random chain; `benchmark_degrade(img, index)` is the
benchmark mix with a seed fixed by the image's index, so a folder of clean images always turns
into the same degraded validation set. `sharp_camera_degrade(img, index)` is a good webcam's
frame in good light, compressed but neither blurred nor noisy: nothing to sharpen, so a model
should leave it about as it is. Each stage is also a function of its own (`defocus`,
`motion_blur`, `sensor_rescale`, `sensor_noise` and `isp_sharpening` on float images in [0, 1],
`jpeg` and `h264_intra` on uint8), so it can be checked alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import cv2
import numpy as np

BENCHMARK_SEED = 20261124
SHARP_CAMERA_SEED = 20261206


@dataclass(frozen=True)
class Mix:
    """Where a chain's draws may go beyond the benchmark's. The benchmark mix stays as it was
    first fixed, so validation figures stay comparable across versions, and it is what training
    draws from by default. The wide mix adds what real webcams and calls do beyond it (in-camera
    sharpening, harder compression); the half-resolution hq student trained on it kept no more
    of its gain on the unseen family (weights/README.md), so it is an option, not the default.
    The sharp mix adds chains from sharp cameras (no optics, less noise): trained on the
    benchmark's alone, a student wipes the texture of a sharp frame as if it were noise."""

    isp_sharpening: float = 0.0  # probability
    jpeg_quality: tuple[int, int] = (35, 90)
    h264_crf: tuple[int, int] = (26, 38)
    sharp_camera: float = 0.0  # probability of a chain without optics, noisy at SHARP_NOISE only


SHARP_NOISE = 0.3  # a sharp camera's chance of visible noise (the others': 0.8)
BENCHMARK_MIX = Mix()
WIDE_MIX = Mix(isp_sharpening=0.4, jpeg_quality=(20, 90), h264_crf=(26, 42))
SHARP_MIX = Mix(sharp_camera=0.3)
MIXES = {"benchmark": BENCHMARK_MIX, "wide": WIDE_MIX, "sharp": SHARP_MIX}


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def disk_kernel(radius: float) -> np.ndarray:
    """A defocused lens's point spread: a disk of `radius` px, normalised."""
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    # Anti-aliased disk: the fraction of each pixel inside the circle, approximated linearly.
    k = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0).astype(np.float32)
    return k / k.sum()


def linear_motion_kernel(length: int, angle: float) -> np.ndarray:
    """A straight streak of `length` px at `angle` (radians), normalised."""
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def trajectory_kernel(size: int, rng: np.random.Generator) -> np.ndarray:
    """A shaky hand: a random walk with momentum, splatted into a size×size kernel."""
    steps = 64
    vel = rng.normal(0, 1, 2)
    pos = np.zeros(2)
    walk = []
    for _ in range(steps):
        vel = 0.8 * vel + rng.normal(0, 0.6, 2)
        pos = pos + vel / steps * size
        walk.append(pos.copy())
    pts = np.array(walk)
    pts -= (pts.max(0) + pts.min(0)) / 2
    span = np.abs(pts).max()
    if span > (size - 1) / 2:
        pts *= (size - 1) / 2 / span
    k = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    for x, y in pts:
        cv2.circle(k, (round(c + x), round(c + y)), 0, 1.0, -1)
    return k / k.sum()


def _blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def defocus(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The lens out of focus: a Gaussian or a disk blur of random size."""
    if rng.random() < 0.6:
        return _gaussian_blur(img, rng.uniform(0.6, 2.2))
    return _blur(img, disk_kernel(rng.uniform(1.0, 3.0)))


def motion_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Movement during the exposure: a straight streak or a shaky-hand trajectory."""
    if rng.random() < 0.5:
        return _blur(img, linear_motion_kernel(int(rng.integers(3, 12)), rng.uniform(0, np.pi)))
    return _blur(img, trajectory_kernel(int(rng.integers(5, 14)), rng))


def down_up(img: np.ndarray, factor: float, up: int) -> np.ndarray:
    """A small sensor read out and scaled back: area down by `factor`, then `up` interpolation."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=up)


def sensor_rescale(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`down_up` with a random factor and upscaling filter."""
    f = rng.uniform(0.45, 0.9)
    return down_up(img, f, cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)


def sensor_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (Poisson) then read noise (Gaussian) of random levels."""
    peak = rng.uniform(60, 600)
    out = rng.poisson(np.clip(img, 0, 1) * peak).astype(np.float32) / peak
    sigma = rng.uniform(1, 6) / 255
    # Read noise is mostly shared by the three channels after demosaicing: mix a common luma
    # component with a smaller per-channel one.
    common = rng.normal(0, sigma, img.shape[:2] + (1,))
    out += (0.8 * common + 0.6 * rng.normal(0, sigma, img.shape)).astype(np.float32)
    return out


def isp_sharpening(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The camera's own edge enhancement: an unsharp mask on luma, added to R, G and B alike
    (chroma untouched, as an ISP does it), after the noise, which it amplifies."""
    luma = img @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR
    detail = luma - _gaussian_blur(luma, rng.uniform(0.5, 1.5))
    return img + rng.uniform(0.2, 1.0) * detail[..., None]


def jpeg(img8: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG encode and decode at `quality`."""
    ok, buf = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV failed to encode JPEG"
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def h264_intra(img8: np.ndarray, crf: int) -> np.ndarray:
    """One intra frame through libx264 (what a call's encoder does to a key frame)."""
    h, w = img8.shape[:2]
    ph, pw = h + h % 2, w + w % 2  # yuv420p needs even sizes
    padded = cv2.copyMakeBorder(img8, 0, ph - h, 0, pw - w, cv2.BORDER_REFLECT)
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded[..., ::-1]), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, format="h264") as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return np.ascontiguousarray(decoded[:h, :w, ::-1])


def degrade(img: np.ndarray, rng: np.random.Generator, mix: Mix = BENCHMARK_MIX) -> np.ndarray:
    """Degrade a clean uint8 HxWx3 (BGR) image with one random webcam chain; returns uint8."""
    x = img.astype(np.float32) / 255
    # No draw at all for what the mix does not have: the benchmark's chains stay what they were.
    sharp = bool(mix.sharp_camera) and rng.random() < mix.sharp_camera
    stages = []
    if not sharp:
        if rng.random() < 0.7:
            stages.append(defocus)
        if rng.random() < 0.35:
            stages.append(motion_blur)
        if rng.random() < 0.5:
            stages.append(sensor_rescale)
    for i in rng.permutation(len(stages)):
        x = stages[i](x, rng)
    if rng.random() < (SHARP_NOISE if sharp else 0.8):
        x = sensor_noise(x, rng)
    if mix.isp_sharpening and rng.random() < mix.isp_sharpening:
        x = isp_sharpening(x, rng)
    x8 = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < 0.85:
        if rng.random() < 0.6:
            x8 = jpeg(x8, int(rng.integers(mix.jpeg_quality[0], mix.jpeg_quality[1] + 1)))
        else:
            x8 = h264_intra(x8, int(rng.integers(mix.h264_crf[0], mix.h264_crf[1] + 1)))
    return x8


def benchmark_degrade(img: np.ndarray, index: int) -> np.ndarray:
    """The fixed validation degradation of the `index`-th image of a folder."""
    return degrade(img, np.random.default_rng([BENCHMARK_SEED, index]))


def sharp_camera_degrade(img: np.ndarray, index: int) -> np.ndarray:
    """The `index`-th image of a folder as a sharp webcam in good light sends it, its noise
    already removed by the camera: only the call's JPEG (quality 50–90) or H.264 (CRF 26–34)."""
    rng = np.random.default_rng([SHARP_CAMERA_SEED, index])
    return jpeg(img, int(rng.integers(50, 91))) if rng.random() < 0.6 else h264_intra(img, int(rng.integers(26, 35)))


def example_grid(images: list[np.ndarray], variants: int = 5, size: int = 192, seed: int = 0) -> np.ndarray:
    """A uint8 BGR grid: one row per image, the clean centre crop then `variants` random chains
    of the wide mix (every stage there is)."""
    rng = np.random.default_rng(seed)
    rows = []
    for img in images:
        h, w = img.shape[:2]
        s = min(size, h, w)
        crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        tiles = [crop] + [degrade(crop, rng, WIDE_MIX) for _ in range(variants)]
        tiles = [cv2.resize(t, (size, size), interpolation=cv2.INTER_NEAREST) for t in tiles]
        rows.append(
            np.hstack([cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)) for t in tiles])
        )
    return np.vstack(rows)
