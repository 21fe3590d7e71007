"""Clean image folders → pools of (degraded, clean) crops and a fixed degraded validation set.

Training draws batches from a *pool* of crops that is degraded once, up front, with seeded random
webcam chains (`distill.degrade`). On a 2-core machine decoding PNGs and running H.264 per batch
would starve the network of CPU; a pool is degraded once, lives in RAM as uint8, is cached on
disk between runs, and — because it is fixed — lets distillation compute the teacher's outputs
once instead of on every student step.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from distill.degrade import MIXES, benchmark_degrade, degrade

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class DataError(Exception):
    """A data problem the user must fix; the message says how."""


def image_paths(folder: str | Path) -> list[Path]:
    """Image files of a folder (recursively, so a DIV2K `*_HR` folder or a tree both work)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist; pass a folder of clean PNG/JPEG images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"no images (PNG/JPEG) in {folder}; pass a folder of clean images")
    return paths


def load_images(folder: str | Path, min_size: int = 0) -> list[np.ndarray]:
    """Decode every image of a folder as uint8 BGR; unreadable or too-small files are skipped
    with one warning that counts them, and an error is raised only if nothing is left."""
    images, corrupt, small = [], [], []
    for p in image_paths(folder):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            corrupt.append(p.name)
        elif min(img.shape[:2]) < min_size:
            small.append(p.name)
        else:
            images.append(img)
    if corrupt:
        log.warning("skipped %d unreadable image(s) in %s: %s", len(corrupt), folder, ", ".join(corrupt[:5]))
    if small:
        log.warning("skipped %d image(s) smaller than %d px in %s", len(small), min_size, folder)
    if not images:
        raise DataError(
            f"no usable images in {folder} ({len(corrupt)} unreadable, {len(small)} smaller than {min_size} px)"
        )
    return images


@dataclass
class Pool:
    """N crops as uint8 NHWC BGR arrays: the degraded network input and the clean target, and
    `key`, which names what went into them (what caches derived from the pool are keyed by)."""

    degraded: np.ndarray
    clean: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.clean)


def _random_crop(img: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    patch = img[y : y + crop, x : x + crop]
    patch = np.rot90(patch, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


def make_pool(
    folder: str | Path, size: int, crop: int, seed: int, mix: str, cache_dir: str | Path | None = None
) -> Pool:
    """Random crops (with flips/rotations) of the folder's images, each degraded by its own
    seeded chain from `mix` (a name in `distill.degrade.MIXES`). Identical arguments give an
    identical pool, so it is cached on disk."""
    if mix not in MIXES:
        raise DataError(f"unknown degradation mix {mix!r}; choose one of {', '.join(MIXES)}")
    # Resolved paths: the same folder however it is spelled, two folders never alike; the mix's
    # ranges, not its name, so that retuning a mix never reuses its old pools.
    paths = sorted(str(p.resolve()) for p in image_paths(folder))
    key = hashlib.sha1(repr((paths, size, crop, seed, MIXES[mix])).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"pool-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache) as z:
            return Pool(z["degraded"], z["clean"], key)
    images = load_images(folder, min_size=crop)
    rng = np.random.default_rng(seed)
    clean = np.empty((size, crop, crop, 3), np.uint8)
    degraded = np.empty_like(clean)
    for i in tqdm(range(size), desc=f"degrading {size} crops (once; cached)", leave=False):
        clean[i] = _random_crop(images[rng.integers(len(images))], crop, rng)
        degraded[i] = degrade(clean[i], rng, MIXES[mix])
    if cache:
        write_atomically(cache, lambda tmp: np.savez(tmp, degraded=degraded, clean=clean))
    return Pool(degraded, clean, key)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a temporary file of this process, then rename it to `path`: a reader
    never sees a half-written file, and the ranks of a distributed run, which build the same
    caches at the same time, never rename each other's temporary away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # savez wants .npz
    write(tmp)
    tmp.replace(path)


def benchmark_set(folder: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) pairs of whole images with the fixed benchmark degradation."""
    return [(benchmark_degrade(img, i), img) for i, img in enumerate(load_images(folder))]


def to_tensor_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC BGR → float32 NCHW RGB in [0,1] (the models' and the ONNX contract's layout)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images[..., ::-1])).permute(0, 3, 1, 2).float().div_(255)
