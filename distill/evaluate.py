"""The quality report: degraded input, classical sharpeners, teacher and students on one table.

Every method sees the same fixed benchmark degradation of the validation folder and is scored
against the clean image (PSNR on RGB and on Y, SSIM); students are also scored against the
teacher, the distillation figure of merit. More sets show whether a model learned webcams or
only its own training degradation: the validation images under a second, independently built
family (`distill.unseen`), frames of real video clips under the benchmark degradation, and the
validation images as a sharp webcam in good light sends them (compressed only), which a model
that sharpens whatever it gets makes worse.
Networks are evaluated as shipped — ONNX files through the runtime's own OnnxSharpener — so the table
describes exactly what users run. The classical baselines get the best setting of a small grid
*chosen on this same set*, which flatters them: the margin a learned model shows here is a lower
bound.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from distill.data import DataError, benchmark_set
from distill.degrade import benchmark_degrade, sharp_camera_degrade
from distill.metrics import psnr, psnr_y, ssim
from distill.unseen import unseen_degrade
from vcam.baselines import cas, unsharp_mask
from vcam.cpu import cpu_info
from vcam.sharpener import OnnxSharpener

Method = Callable[[np.ndarray], np.ndarray]

BASELINE_GRID: dict[str, list[tuple[str, Method]]] = {
    "unsharp mask": [
        (f"amount {a}, sigma {s}", functools.partial(unsharp_mask, amount=a, sigma=s))
        for a in (0.3, 0.6, 1.0)
        for s in (1.0, 2.0)
    ],
    "CAS": [(f"sharpness {k}", functools.partial(cas, sharpness=k)) for k in (0.0, 0.5, 1.0)],
}


def onnx_method(path: str | Path) -> Method:
    sharpener = OnnxSharpener(path, provider="cpu")
    return lambda img: sharpener(img).copy()  # the sharpener reuses its output buffer


def score(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr(o, r) for o, r in zip(outputs, references)])),
        "psnr_y": float(np.mean([psnr_y(o, r) for o, r in zip(outputs, references)])),
        "ssim": float(np.mean([ssim(o, r) for o, r in zip(outputs, references)])),
    }


VIDEO_FRAMES = 6  # per clip, evenly spaced


def video_set(video_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, frame) pairs: frames of every clip in the folder under the benchmark degradation."""
    import cv2

    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for clip in sorted(Path(video_dir).glob("*.avi")) + sorted(Path(video_dir).glob("*.mp4")):
        capture = cv2.VideoCapture(str(clip))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, max(count - 1, 0), VIDEO_FRAMES).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = capture.read()
            if ok:
                pairs.append((benchmark_degrade(frame, len(pairs)), frame))
        capture.release()
    if not pairs:
        raise DataError(f"no decodable .avi/.mp4 clips in {video_dir}")
    return pairs


def _rows(
    pairs: list[tuple[np.ndarray, np.ndarray]], methods: dict[str, Method]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Scores of the input, the best setting of each baseline and each method; and the outputs."""
    degraded, clean = [d for d, _ in pairs], [c for _, c in pairs]
    rows: dict[str, dict[str, Any]] = {"degraded input": score(degraded, clean)}
    for name, grid in BASELINE_GRID.items():
        rows[name] = max(
            ({"setting": s, **score([f(d) for d in degraded], clean)} for s, f in grid), key=lambda r: r["psnr"]
        )
    outputs = {name: [method(d) for d in degraded] for name, method in methods.items()}
    rows.update({name: score(out, clean) for name, out in outputs.items()})
    return rows, outputs


def evaluate(
    val_dir: str | Path,
    models: dict[str, str | Path],
    teacher: str | None = "teacher",
    video_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Scores of input, baselines and each named ONNX model on the benchmark set; student-vs-teacher
    for the others; the same rows on the unseen family, the sharp camera's frames and, with
    `video_dir`, on video frames."""
    pairs = benchmark_set(val_dir)
    methods = {name: onnx_method(path) for name, path in models.items()}
    rows, outputs = _rows(pairs, methods)
    vs_teacher = {}
    if teacher in outputs:
        for name, out in outputs.items():
            if name != teacher:
                s = score(out, outputs[teacher])
                vs_teacher[name] = {"psnr": s["psnr"], "ssim": s["ssim"]}
    report = {"val_dir": str(val_dir), "images": len(pairs), "methods": rows, "vs_teacher": vs_teacher}
    report["unseen"] = _rows([(unseen_degrade(c, i), c) for i, (_, c) in enumerate(pairs)], methods)[0]
    report["sharp"] = _rows([(sharp_camera_degrade(c, i), c) for i, (_, c) in enumerate(pairs)], methods)[0]
    if video_dir is not None:
        video = video_set(video_dir)
        report["video"] = {"dir": str(video_dir), "frames": len(video), "methods": _rows(video, methods)[0]}
    return report


def speed(models: dict[str, str | Path], frames: int) -> dict[str, Any]:
    """ms per 1280x720 frame of each model through the real pipeline (`vcam bench`), with the
    classical sharpeners measured in the first model's run, and the CPU they ran on. Timed here,
    beside the quality figures, so one command regenerates the whole trade-off table."""
    from vcam.bench import run_bench

    rows: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        report = run_bench(path, [("720p", 1280, 720)], frames)
        for r in report["results"]:
            label = name if r["method"] == "model" else {"unsharp": "unsharp mask", "cas": "CAS"}[r["method"]]
            rows.setdefault(
                label,
                {
                    "infer_p50": r["stages"]["infer"]["p50"],
                    "e2e_p50": r["stages"]["e2e"]["p50"],
                    "e2e_p95": r["stages"]["e2e"]["p95"],
                    "non_inference_p50": r["non_inference_p50_ms"],
                },
            )
    return {"cpu": cpu_info().as_dict(), "methods": rows}


def to_markdown(report: dict[str, Any]) -> str:
    base = report["methods"]["degraded input"]["psnr"]
    lines = [
        f"Validation: `{report['val_dir']}` ({report['images']} images, fixed benchmark degradation).",
        "",
        "| method | PSNR RGB (dB) | Δ vs input | PSNR Y (dB) | SSIM |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in report["methods"].items():
        label = f"{name} ({r['setting']})" if "setting" in r else name
        lines.append(f"| {label} | {r['psnr']:.2f} | {r['psnr'] - base:+.2f} | {r['psnr_y']:.2f} | {r['ssim']:.4f} |")
    lines += _generalisation(report) + _sharp_camera(report)
    if report["vs_teacher"]:
        lines += ["", "| vs teacher | PSNR (dB) | SSIM |", "|---|---:|---:|"]
        lines += [f"| {n} | {r['psnr']:.2f} | {r['ssim']:.4f} |" for n, r in report["vs_teacher"].items()]
    if report.get("speed"):
        cpu = report["speed"]["cpu"]
        lines += [
            "",
            f"Speed per 1280×720 frame, `vcam bench` pipeline on {cpu['name']} (ms, median unless noted):",
            "",
            "| method | sharpen (inference) | other stages | end-to-end | end-to-end p95 |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {r['infer_p50']:.1f} | {r['non_inference_p50']:.1f} | {r['e2e_p50']:.1f} | {r['e2e_p95']:.1f} |"
            for n, r in report["speed"]["methods"].items()
        ]
    return "\n".join(lines) + "\n"


def _generalisation(report: dict[str, Any]) -> list[str]:
    """Gain over the input on each set, and the share of the benchmark gain kept on the others."""
    if "unseen" not in report:
        return []
    sets = [("benchmark", report["methods"]), ("unseen family", report["unseen"])]
    if report.get("video"):
        sets.append((f"video frames ({report['video']['frames']})", report["video"]["methods"]))
    head = " | ".join(f"Δ {name}" for name, _ in sets) + " | " + " | ".join(f"kept on {name}" for name, _ in sets[1:])
    lines = [
        "",
        "Generalisation: PSNR gain over the degraded input (dB) on the benchmark set, on the validation "
        "images under the second degradation family (`distill/unseen.py`, never trained on) and on frames of "
        'the video clips; "kept" is that gain as a share of the benchmark gain.',
        "",
        f"| method | {head} |",
        "|---" * (1 + 2 * len(sets) - 1) + "|",
    ]
    for name in report["methods"]:
        if name == "degraded input":
            continue
        gains = [rows[name]["psnr"] - rows["degraded input"]["psnr"] for _, rows in sets]
        kept = [f"{g / gains[0] * 100:.0f} %" if gains[0] > 0 else "" for g in gains[1:]]
        lines.append(f"| {name} | " + " | ".join(f"{g:+.2f}" for g in gains) + " | " + " | ".join(kept) + " |")
    return lines


def _sharp_camera(report: dict[str, Any]) -> list[str]:
    """What each method does to a sharp camera's frames, where there is no blur to undo."""
    if "sharp" not in report:
        return []
    rows = report["sharp"]
    base = rows["degraded input"]
    lines = [
        "",
        f"Sharp camera: the validation images compressed only, neither blurred nor noisy "
        f"(`distill.degrade.sharp_camera_degrade`; input {base['psnr']:.2f} dB, SSIM {base['ssim']:.4f}). "
        "There is nothing to sharpen: a method that loses here over-sharpens a good webcam.",
        "",
        "| method | Δ PSNR (dB) | Δ SSIM |",
        "|---|---:|---:|",
    ]
    for name, r in rows.items():
        if name != "degraded input":
            label = f"{name} ({r['setting']})" if "setting" in r else name
            lines.append(f"| {label} | {r['psnr'] - base['psnr']:+.2f} | {r['ssim'] - base['ssim']:+.4f} |")
    return lines


def write_report(report: dict[str, Any], out_stem: str | Path) -> None:
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    out_stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out_stem.with_suffix(".md").write_text(to_markdown(report))
