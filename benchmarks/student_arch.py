"""Choose the student: quality vs milliseconds for candidate architectures, measured here.

Each candidate is distilled from the same teacher for the same number of steps, exported
(re-parameterised) to ONNX fp32 and static INT8, timed on a 1280×720 frame with ONNX Runtime
(median of N runs, ONNX Runtime's default threads, with CAS timed in the same process as a
yardstick for this machine's speed) and scored on the validation set: with the benchmark degradation (a random
webcam chain per image), and with one strong defocus (Gaussian sigma 1.2, then JPEG quality 70),
the case where a small receptive field shows. Writes benchmarks/student_arch.{md,json}.

    python benchmarks/student_arch.py --teacher runs/teacher/best.pt --steps 2000
    python benchmarks/student_arch.py --teacher weights/teacher.pt --steps 15000 \
        --candidates 32x1,32x2,32x3,32x4,24x3 --work runs/arch15k --out benchmarks/student_arch_15k
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from paths import DATA

from distill.data import benchmark_set
from distill.evaluate import onnx_method, score
from distill.export import export_onnx, quantize_luma8
from distill.models import Student, StudentConfig, macs
from distill.train import TrainConfig, train
from vcam.baselines import cas
from vcam.cpu import cpu_info
from vcam.sharpener import OnnxSharpener

CANDIDATES = "16x4,32x4,32x6,48x4,48x6,64x6"  # channels x blocks


def defocused(clean: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(clean, (0, 0), 1.2, borderType=cv2.BORDER_REFLECT)
    return cv2.imdecode(cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def sharpener_ms(path: Path, frame: np.ndarray, runs: int) -> float:
    """Model plus the runtime's own conversions: the forms differ in both. ONNX Runtime's
    default threads, and the calling thread off their CPUs, as the pipeline runs it."""
    sharpener = OnnxSharpener(path, provider="cpu")
    with sharpener.calling_thread():
        return median_ms(lambda: sharpener(frame), runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--train-dir", default=str(DATA / "train"))
    ap.add_argument("--val-dir", default=str(DATA / "val"))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--candidates", default=CANDIDATES, help="comma list of CHANNELSxBLOCKS")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", default="runs/arch")
    ap.add_argument("--out", default="benchmarks/student_arch")
    args = ap.parse_args()

    val = benchmark_set(args.val_dir)
    degraded, clean = [d for d, _ in val], [c for _, c in val]
    input_psnr = score(degraded, clean)["psnr"]
    blurred = [defocused(c) for c in clean]
    blurred_psnr = score(blurred, clean)["psnr"]
    rng = np.random.default_rng(0)
    frame8 = (rng.random((720, 1280, 3)) * 255).astype(np.uint8)
    rows = []
    for channels, blocks in (map(int, c.split("x")) for c in args.candidates.split(",")):
        name = f"c{channels}b{blocks}"
        work = Path(args.work) / name
        cfg = TrainConfig(
            kind="student",
            model={"channels": channels, "blocks": blocks},
            train_dir=args.train_dir,
            val_dir=args.val_dir,
            out=str(work),
            steps=args.steps,
            lr=2e-3,
            eval_every=args.steps,
            teacher=args.teacher,
        )
        ckpt = train(cfg)
        fp32, int8 = work / "student.onnx", work / "student-int8.onnx"
        export_onnx(ckpt, fp32, name, version=1)
        quantize_luma8(ckpt, fp32, int8, degraded[:12])
        model = Student(StudentConfig(channels, blocks))
        model.fold()
        cas_ms = median_ms(lambda: cas(frame8), args.runs)
        q32, q8 = (score([onnx_method(p)(d) for d in degraded], clean)["psnr"] for p in (fp32, int8))
        q8_blur = score([onnx_method(int8)(d) for d in blurred], clean)["psnr"]
        ms32, ms8 = sharpener_ms(fp32, frame8, args.runs), sharpener_ms(int8, frame8, args.runs)
        rows.append(
            {
                "student": name,
                "channels": channels,
                "blocks": blocks,
                "params": sum(p.numel() for p in model.parameters()),
                "gmac_720p": macs(model) / 1e9,
                "ms_fp32": ms32,
                "ms_int8": ms8,
                "cas_ms": cas_ms,
                "psnr_fp32": q32,
                "psnr_int8": q8,
                "gain_db": q32 - input_psnr,
                "int8_cost_db": q32 - q8,
                "defocus_gain_db_int8": q8_blur - blurred_psnr,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    out = Path(args.out)
    cpu = cpu_info()
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "steps": args.steps,
                "cpu": cpu.as_dict(),
                "input_psnr": input_psnr,
                "defocus_input_psnr": blurred_psnr,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        f"CPU: {cpu.describe()}.",
        "",
        f"Students distilled for {args.steps} steps from `{args.teacher}`; validation `{args.val_dir}` "
        f"(degraded input {input_psnr:.2f} dB). Times: median of {args.runs} runs on one 1280×720 frame, "
        "ONNX Runtime CPU, its default threads (one per core), through the runtime's OnnxSharpener "
        "(its conversions included; INT8 = the luma8 form); "
        "CAS on the same frame in the same process for scale. Defocus: the validation images blurred "
        f"(Gaussian sigma 1.2) and JPEG-compressed (quality 70), input {blurred_psnr:.2f} dB.",
        "",
        "| student | params | GMAC/720p | fp32 ms | INT8 ms | INT8 ms / CAS ms | PSNR fp32 | gain vs input "
        "| INT8 cost | defocus gain (INT8) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['student']} | {r['params']:,} | {r['gmac_720p']:.2f} | {r['ms_fp32']:.1f} | {r['ms_int8']:.1f} | "
            f"{r['ms_int8'] / r['cas_ms']:.2f} | {r['psnr_fp32']:.2f} | {r['gain_db']:+.2f} dB | "
            f"{r['int8_cost_db']:+.3f} dB | "
            f"{r['defocus_gain_db_int8']:+.2f} dB |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
