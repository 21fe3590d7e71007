"""The README's pictures, regenerated from the shipped model.

- before_after.jpg: validation crops, degraded | SharpCam student | ground truth.
- vtest_strip.jpg: frames of a real clip (static camera), camera input | SharpCam output
  (student + temporal filter, as `vcam start` runs it).

    python benchmarks/pictures.py --model weights/student.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from paths import DATA

from distill.data import benchmark_set
from distill.evaluate import onnx_method
from vcam.frames import to_bgr, to_i420
from vcam.options import DEFAULTS
from vcam.sharpener import OnnxSharpener
from vcam.temporal import TemporalFilter


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y : y + size, x : x + size]


def before_after(model: str, val_dir: str, picks: list[int], size: int) -> np.ndarray:
    pairs = benchmark_set(val_dir)
    run = onnx_method(model)
    rows = []
    for i in picks:
        degraded, clean = pairs[i]
        tiles = [centre_crop(t, size) for t in (degraded, run(degraded), clean)]
        rows.append(np.hstack([label(t, s) for t, s in zip(tiles, ("degraded", "SharpCam", "ground truth"))]))
    return np.vstack(rows)


def video_strip(model: str, video: str, frames: list[int], size: int) -> np.ndarray:
    cap = cv2.VideoCapture(video)
    sharpen, temporal = OnnxSharpener(model), TemporalFilter(DEFAULTS.ema)
    rows, i = [], 0
    while i <= max(frames):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{video} has fewer than {max(frames) + 1} frames")
        yuv = to_i420(frame)  # the pipeline's frames, as `vcam start` converts them
        out = to_bgr(temporal(yuv, sharpen(yuv)))
        if i in frames:
            # A 2× nearest-neighbour zoom of the centre, so the difference is visible on a page.
            def zoom(im: np.ndarray) -> np.ndarray:
                return cv2.resize(centre_crop(im, size // 2), (size, size), interpolation=cv2.INTER_NEAREST)

            rows.append(np.hstack([label(zoom(frame), f"camera, frame {i}"), label(zoom(out), "SharpCam")]))
        i += 1
    return np.vstack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="weights/student.onnx")
    ap.add_argument("--val-dir", default=str(DATA / "val"))
    ap.add_argument("--video", default=str(DATA / "video" / "vtest.avi"))
    ap.add_argument("--out-dir", default="benchmarks")
    args = ap.parse_args()
    out = Path(args.out_dir)
    cv2.imwrite(
        str(out / "before_after.jpg"),
        before_after(args.model, args.val_dir, [2, 9, 13], 224),
        [cv2.IMWRITE_JPEG_QUALITY, 92],
    )
    cv2.imwrite(
        str(out / "vtest_strip.jpg"),
        video_strip(args.model, args.video, [100, 400], 320),
        [cv2.IMWRITE_JPEG_QUALITY, 92],
    )
    print(f"wrote {out / 'before_after.jpg'} and {out / 'vtest_strip.jpg'}")


if __name__ == "__main__":
    main()
