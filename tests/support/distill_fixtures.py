"""Tiny generated image folders and run settings for the distillation tests (no ../shared)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from distill.train import TrainConfig

TINY_TEACHER = {"width": 8, "blocks": [1, 1, 1]}
TINY_STUDENT = {"channels": 16, "blocks": 2, "scale": 4, "context": 0}


def write_images(folder: Path, n: int, size: tuple[int, int] = (72, 88), seed: int = 0) -> Path:
    """Smooth random colour fields with a few sharp shapes: something worth restoring."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = cv2.resize((rng.random((6, 6, 3)) * 255).astype(np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
        for _ in range(4):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            p = tuple(int(v) for v in rng.integers(0, min(size), 2))
            cv2.rectangle(img, p, (p[0] + 15, p[1] + 9), c, -1)
        cv2.imwrite(str(folder / f"img{i}.png"), img)
    return folder


def tiny_config(tmp: Path, **changes) -> TrainConfig:
    train_dir = tmp / "train"
    val_dir = tmp / "val"
    if not train_dir.exists():
        write_images(train_dir, 4)
        write_images(val_dir, 2, size=(40, 52), seed=1)
    cfg = dict(
        kind="teacher",
        model=dict(TINY_TEACHER),
        train_dir=str(train_dir),
        val_dir=str(val_dir),
        out=str(tmp / "run"),
        cache=str(tmp / "cache"),
        crop=32,
        pool=32,
        batch=4,
        steps=20,
        lr=3e-3,
        warmup=2,
        average_decay=0.0,
        eval_every=10,
        checkpoint_minutes=10.0,
        threads=1,
        precision="fp32",  # the same numbers on every host; bf16 has its own test
    )
    cfg.update(changes)
    return TrainConfig(**cfg)
