"""The quality report: degraded input, classical sharpeners, teacher and students on one table.

Every method sees the same fixed benchmark degradation of the validation folder and is scored
against the clean image (PSNR on RGB and on Y, SSIM); students are also scored against the
teacher, the distillation figure of merit. Networks are evaluated as shipped — ONNX files through
the runtime's own Sharpener — so the table describes exactly what users run. The classical baselines get the
best setting of a small grid *chosen on this same set*, which flatters them: the margin a learned
model shows here is a lower bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from distill.data import benchmark_set
from distill.metrics import psnr, psnr_y, ssim
from vcam.baselines import cas, unsharp_mask
from vcam.sharpen import Sharpener

Method = Callable[[np.ndarray], np.ndarray]

BASELINE_GRID: dict[str, list[tuple[str, Method]]] = {
    "unsharp mask": [(f"amount {a}, sigma {s}", lambda im, a=a, s=s: unsharp_mask(im, amount=a, sigma=s)) for a in (0.3, 0.6, 1.0) for s in (1.0, 2.0)],
    "CAS": [(f"sharpness {k}", lambda im, k=k: cas(im, sharpness=k)) for k in (0.0, 0.5, 1.0)],
}


def onnx_method(path: str | Path) -> Method:
    sharpener = Sharpener(path, provider="cpu")
    return lambda img: sharpener(img).copy()  # the Sharpener reuses its output buffer


def score(outputs: list[np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr(o, r) for o, r in zip(outputs, references)])),
        "psnr_y": float(np.mean([psnr_y(o, r) for o, r in zip(outputs, references)])),
        "ssim": float(np.mean([ssim(o, r) for o, r in zip(outputs, references)])),
    }


def evaluate(val_dir: str | Path, models: dict[str, str | Path], teacher: str | None = "teacher") -> dict:
    """Scores of input, baselines and each named ONNX model; student-vs-teacher for the others."""
    pairs = benchmark_set(val_dir)
    degraded, clean = [d for d, _ in pairs], [c for _, c in pairs]
    rows: dict[str, dict] = {"degraded input": score(degraded, clean)}
    for name, grid in BASELINE_GRID.items():
        best = max(({"setting": s, **score([f(d) for d in degraded], clean)} for s, f in grid), key=lambda r: r["psnr"])
        rows[name] = best
    outputs = {name: [onnx_method(path)(d) for d in degraded] for name, path in models.items()}
    for name, out in outputs.items():
        rows[name] = score(out, clean)
    vs_teacher = {}
    if teacher in outputs:
        for name, out in outputs.items():
            if name != teacher:
                s = score(out, outputs[teacher])
                vs_teacher[name] = {"psnr": s["psnr"], "ssim": s["ssim"]}
    return {"val_dir": str(val_dir), "images": len(pairs), "methods": rows, "vs_teacher": vs_teacher}


def speed(models: dict[str, str | Path], frames: int) -> dict[str, dict[str, float]]:
    """ms per 1280x720 frame of each model through the real pipeline (`vcam bench`), with the
    classical sharpeners measured in the first model's run. Timed here, beside the quality
    figures, so one command regenerates the whole trade-off table."""
    from vcam.bench import run_bench

    rows: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        report = run_bench(path, [("720p", 1280, 720)], frames)
        for r in report["results"]:
            label = name if r["method"] == "model" else {"unsharp": "unsharp mask", "cas": "CAS"}[r["method"]]
            rows.setdefault(label, {"infer_p50": r["stages"]["infer"]["p50"], "e2e_p50": r["stages"]["e2e"]["p50"],
                                    "e2e_p95": r["stages"]["e2e"]["p95"], "non_inference_p50": r["non_inference_p50_ms"]})
    return rows


def to_markdown(report: dict) -> str:
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
    if report["vs_teacher"]:
        lines += ["", "| student vs teacher | PSNR (dB) | SSIM |", "|---|---:|---:|"]
        lines += [f"| {n} | {r['psnr']:.2f} | {r['ssim']:.4f} |" for n, r in report["vs_teacher"].items()]
    if report.get("speed"):
        lines += ["", "Speed per 1280×720 frame, `vcam bench` pipeline on this machine (ms, median unless noted):", "",
                  "| method | sharpen (inference) | other stages | end-to-end | end-to-end p95 |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {r['infer_p50']:.1f} | {r['non_inference_p50']:.1f} | {r['e2e_p50']:.1f} | {r['e2e_p95']:.1f} |"
                  for n, r in report["speed"].items()]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_stem: str | Path) -> None:
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    out_stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out_stem.with_suffix(".md").write_text(to_markdown(report))
