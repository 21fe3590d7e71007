"""Flicker and ghosting of the temporal stage (vcam/temporal.py), with and without the EMA.

Frames are I420, as in the pipeline. Two measurements:

1. Synthetic sequence with ground truth (`distill.temporal_metrics.synthetic_sequence`): flicker =
   mean |Δout - Δgt| on samples (Y, U and V values) whose truth is static, ghosting = PSNR vs
   truth on samples whose truth moved. Sharpened by an identity "model" (noise passes through)
   and by unsharp masking of Y (noise amplified, as a sharpener does). A residual-only EMA (only
   sharp - in is smoothed, with the same motion weights) is measured alongside to justify
   smoothing the whole frame.
2. A real static-camera clip (default ../shared/data/video/vtest.avi) without ground truth,
   measured on the BGR a viewer gets back from the I420 output.
   Static pixels: those whose input Y, box-blurred 5x5 to suppress noise, stays within
   STATIC_RANGE levels over the whole window (nobody walked there). Flicker = mean |Δout| over
   static pixels (the truth does not change there); temporal std = mean over static pixels of
   each pixel's std over time. Lag = mean |out_EMA - out_plain| on pixels whose blurred Y
   changed by more than STATIC_RANGE since the previous frame: how far the EMA output trails
   the current frame where things move (0 = no ghosting possible).

Run from the repository root:  python benchmarks/temporal.py [--video PATH] [--frames N]
Writes benchmarks/temporal.md and benchmarks/temporal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from paths import DATA, ROOT

from distill.temporal_metrics import flicker, moving_psnr, synthetic_sequence
from vcam.baselines import unsharp_mask
from vcam.frames import on_luma, to_bgr, to_i420
from vcam.options import DEFAULTS
from vcam.sharpener import OnnxSharpener
from vcam.temporal import TemporalFilter

STATIC_RANGE = 12  # levels of blurred luma a "static" pixel may vary over the window

Sharpen = Callable[[np.ndarray], np.ndarray]


def unsharp_y(frame: np.ndarray) -> np.ndarray:
    """Unsharp mask (amount 1, sigma 1) on the Y plane of an I420 frame: a sharpener that
    amplifies the noise, as any sharpener does."""
    return on_luma(lambda y: unsharp_mask(y, 1.0, 1.0), frame)


def residual_only(strength: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The alternative design: smooth only sharp - in (stored offset by 128 in uint8)."""
    filt = TemporalFilter(strength)

    def apply(frame_in: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        residual = np.clip(sharp.astype(np.int16) - frame_in + 128, 0, 255).astype(np.uint8)
        smoothed = filt(frame_in, residual).astype(np.int16) - 128
        return np.clip(frame_in + smoothed, 0, 255).astype(np.uint8)

    return apply


def synthetic_rows(strength: float) -> list[dict]:
    models: dict[str, Sharpen] = {"identity": lambda f: f, "unsharp mask": unsharp_y}
    rows = []
    for noise in (6.0, 8.0, 12.0):
        for speed in ((1, 0), (2, 1), (5, 3)):
            noisy, truth = synthetic_sequence(60, 192, 256, noise, speed)
            for name, sharpen in models.items():
                plain = [sharpen(f) for f in noisy]
                ema = TemporalFilter(strength)
                smoothed = [ema(f, s).copy() for f, s in zip(noisy, plain)]
                residual = residual_only(strength)
                res = [residual(f, s) for f, s in zip(noisy, plain)]
                f0, p0 = flicker(plain, truth), moving_psnr(plain, truth)
                rows.append(
                    {
                        "noise": noise,
                        "speed": list(speed),
                        "model": name,
                        "flicker_plain": f0,
                        "flicker_ema": flicker(smoothed, truth),
                        "flicker_residual_ema": flicker(res, truth),
                        "moving_psnr_plain": p0,
                        "moving_psnr_ema": moving_psnr(smoothed, truth),
                        "moving_psnr_residual_ema": moving_psnr(res, truth),
                    }
                )
    return rows


def read_clip(path: Path, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    clip = []
    while len(clip) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        clip.append(to_i420(frame))
    capture.release()
    if len(clip) < 2:
        raise SystemExit(f"error: cannot read frames from {path}; pass --video PATH to a video file")
    return clip


def blurred_luma(frame: np.ndarray) -> np.ndarray:
    return cv2.blur(frame[: frame.shape[0] * 2 // 3], (5, 5))


def clip_figures(clip: list[np.ndarray], sharpen: Sharpen, strength: float) -> dict:
    lumas = np.stack([blurred_luma(f) for f in clip])
    static = (lumas.max(axis=0) - lumas.min(axis=0)) <= STATIC_RANGE
    ema = TemporalFilter(strength)
    flicker_sum = {"plain": 0.0, "ema": 0.0}
    sums = {k: np.zeros((static.sum(), 3)) for k in flicker_sum}
    squares = {k: np.zeros((static.sum(), 3)) for k in flicker_sum}
    lag, lag_values, previous = 0.0, 0, {}
    for t, frame in enumerate(clip):
        sharp = sharpen(frame).copy()
        outputs = {"plain": to_bgr(sharp).astype(np.float64), "ema": to_bgr(ema(frame, sharp)).astype(np.float64)}
        for key, out in outputs.items():
            sums[key] += out[static]
            squares[key] += out[static] ** 2
            if t:
                flicker_sum[key] += float(np.abs(out - previous[key])[static].mean())
        if t:
            moving = np.abs(lumas[t].astype(int) - lumas[t - 1]) > STATIC_RANGE
            lag += float(np.abs(outputs["ema"] - outputs["plain"])[moving].sum())
            lag_values += int(moving.sum()) * 3
        previous = outputs
    n = len(clip)
    std = {k: float(np.sqrt(np.maximum(squares[k] / n - (sums[k] / n) ** 2, 0)).mean()) for k in sums}
    return {
        "frames": n,
        "size": list(lumas.shape[:0:-1]),
        "static_fraction": float(static.mean()),
        "flicker_plain": flicker_sum["plain"] / (n - 1),
        "flicker_ema": flicker_sum["ema"] / (n - 1),
        "temporal_std_plain": std["plain"],
        "temporal_std_ema": std["ema"],
        "lag_on_moving": lag / max(lag_values, 1),
    }


def cost_720p(clip: list[np.ndarray], strength: float, repeats: int = 200) -> dict:
    frames = [to_i420(cv2.resize(to_bgr(f), (1280, 720))) for f in clip[:8]]
    ema = TemporalFilter(strength)
    times = []
    for i in range(repeats + 2):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        ema(frame, frame)
        times.append((time.perf_counter() - start) * 1e3)
    times = times[2:]  # the first two calls allocate and seed the history
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "load_average": os.getloadavg()[0],
    }


def markdown(report: dict) -> str:
    lines = [
        "# Temporal stage: flicker and ghosting",
        "",
        f"`python benchmarks/temporal.py {report['command']}` on {report['machine']}; "
        f"EMA strength {report['strength']}. Definitions: see the docstring of "
        "benchmarks/temporal.py (flicker and moving-content PSNR: vcam/temporal.py).",
        "",
        "## Synthetic sequence (ground truth known)",
        "",
        "60 frames 256x192, a textured patch moving over a still textured scene, fresh "
        "Gaussian noise every frame, as I420. Flicker in levels (lower is better), PSNR in "
        "dB on samples whose truth moved (ghosting lowers it).",
        "",
        "| noise σ | speed px/frame | model | flicker plain | flicker EMA | reduction | "
        "moving PSNR plain | moving PSNR EMA | Δ dB | residual-only EMA: reduction / Δ dB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["synthetic"]:
        cut = 1 - r["flicker_ema"] / r["flicker_plain"]
        res_cut = 1 - r["flicker_residual_ema"] / r["flicker_plain"]
        lines.append(
            f"| {r['noise']:g} | {r['speed'][0]},{r['speed'][1]} | {r['model']} | "
            f"{r['flicker_plain']:.2f} | {r['flicker_ema']:.2f} | {cut:.0%} | "
            f"{r['moving_psnr_plain']:.2f} | {r['moving_psnr_ema']:.2f} | "
            f"{r['moving_psnr_ema'] - r['moving_psnr_plain']:+.2f} | "
            f"{res_cut:.0%} / {r['moving_psnr_residual_ema'] - r['moving_psnr_plain']:+.2f} |"
        )
    c = report["clip"]
    lines += [
        "",
        f"## Real clip: {report['video']} (static camera, no ground truth)",
        "",
        f"{c['frames']} frames {c['size'][0]}x{c['size'][1]}, sharpened by "
        f"{report['sharpener']}; {c['static_fraction']:.0%} of the pixels are static.",
        "",
        "| | plain | EMA | reduction |",
        "|---|---|---|---|",
        f"| flicker, mean \\|Δout\\| on static pixels | {c['flicker_plain']:.2f} | "
        f"{c['flicker_ema']:.2f} | {1 - c['flicker_ema'] / c['flicker_plain']:.0%} |",
        f"| temporal std on static pixels | {c['temporal_std_plain']:.2f} | "
        f"{c['temporal_std_ema']:.2f} | "
        f"{1 - c['temporal_std_ema'] / c['temporal_std_plain']:.0%} |",
        f"| lag on moving pixels, mean \\|EMA - plain\\| | 0 | {c['lag_on_moving']:.2f} | |",
        "",
        "## Cost",
        "",
        f"TemporalFilter at 1280x720: p50 {report['cost_720p']['p50_ms']:.2f} ms, "
        f"p95 {report['cost_720p']['p95_ms']:.2f} ms per frame, measured at a load average "
        f"of {report['cost_720p']['load_average']:.1f} on this machine "
        "(`vcam bench` measures it inside the pipeline).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DATA / "video" / "vtest.avi")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--strength", type=float, default=DEFAULTS.ema)
    parser.add_argument(
        "--model", type=Path, help="sharpen the clip with this ONNX model instead of the unsharp-mask stand-in"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "temporal")
    args = parser.parse_args()

    clip = read_clip(args.video, args.frames)
    if args.model:
        sharpen, sharpener = OnnxSharpener(args.model), f"the model {args.model.name}"
    else:
        sharpen, sharpener = unsharp_y, "unsharp mask (amount 1, sigma 1) standing in for the model"
    video = args.video.resolve()
    report = {
        "command": f"--frames {args.frames} --strength {args.strength}"
        + (f" --model {args.model}" if args.model else ""),
        "machine": f"{platform.machine()} with {os.cpu_count()} CPUs",
        "strength": args.strength,
        "video": video.name,
        "sharpener": sharpener,
        "synthetic": synthetic_rows(args.strength),
        "clip": clip_figures(clip, sharpen, args.strength),
        "cost_720p": cost_720p(clip, args.strength),
    }
    text = markdown(report)
    print(text)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
