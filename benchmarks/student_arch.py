"""Choose the student: quality vs milliseconds for candidate architectures, measured here.

Each candidate (CHANNELSxBLOCKS, with `s2` appended for a student at 1/2 instead of 1/4
resolution and `kN` for a context branch N wide) is distilled from the same teacher for the
same number of steps (output-level KD with `--w-feat`, 0 by default: feature mimicry needs
1/4-resolution features), exported
(re-parameterised) to ONNX fp32 and static INT8, timed on a 1280×720 frame with ONNX Runtime
(median of N runs, ONNX Runtime's default threads, with CAS timed in the same process as a
yardstick for this machine's speed) and scored on the validation set: with the benchmark
degradation (a random webcam chain per image), with the second degradation family that nothing
trains on (`distill.unseen`), and with one strong defocus (Gaussian sigma 1.2, then JPEG quality
70), the case where a small receptive field shows. Writes benchmarks/student_arch.{md,json}.

    python benchmarks/student_arch.py --teacher runs/teacher/best.pt --steps 4000 --work runs/arch-budgets \
        --out benchmarks/student_arch_budgets
    python benchmarks/student_arch.py --teacher runs/teacher/best.pt --work runs/arch-budgets \
        --out benchmarks/student_arch_budgets --retime    # times again, on a quiet machine
    python benchmarks/student_arch.py --teacher weights/teacher.pt --steps 15000 --w-feat 0.1 \
        --candidates 32x1,32x2,32x3,32x4,24x3 --work runs/arch15k --out benchmarks/student_arch_15k
    python benchmarks/student_arch.py --teacher runs/teacher-snapshot.pt --steps 4000 --threads 1 \
        --candidates 8x0s2,16x0s2,16x0s2k16,8x0s2k16,16x0s2k32,8x0s2k8,16x0s2k24,16x1s2k32,16x0s2k48 \
        --work runs/arch-ctx --out benchmarks/student_arch_context
"""

from __future__ import annotations

import argparse
import json
import re
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
from distill.train import TrainConfig, load_checkpoint, train
from distill.unseen import unseen_degrade
from vcam.baselines import cas
from vcam.cpu import cpu_info
from vcam.sharpener import OnnxSharpener

# Pairs of equal MAC budgets per 720p frame: the fast tier's (~0.9 GMAC) and the default's (~1.6),
# each as one wide layer, a deeper narrower stack, and the same budget at 1/2 resolution.
CANDIDATES = "24x1,20x3,16x1s2,12x2s2,32x2,24x4,24x1s2,12x4s2"


def timings(work: Path, frame: np.ndarray, runs: int) -> dict[str, float]:
    """A candidate's exported fp32 and INT8 models timed on `frame`, and CAS in the same process."""
    fp32, int8 = work / "student.onnx", work / "student-int8.onnx"
    cas_ms = median_ms(lambda: cas(frame), runs)
    return {"ms_fp32": sharpener_ms(fp32, frame, runs), "ms_int8": sharpener_ms(int8, frame, runs), "cas_ms": cas_ms}


def parse_candidate(text: str) -> dict[str, int]:
    """'32x2' -> 32 channels, 2 blocks, scale 4; '24x1s2' -> the same at scale 2; '16x0s2k16' ->
    with a 16-wide context branch (`distill.models.Context`)."""
    found = re.fullmatch(r"(\d+)x(\d+)(?:s(\d+))?(?:k(\d+))?", text.strip())
    if found is None:
        raise SystemExit(f"candidate {text!r} is not CHANNELSxBLOCKS[sSCALE][kCONTEXT], e.g. 16x0s2k16")
    channels, blocks, scale, context = found.groups()
    return {"channels": int(channels), "blocks": int(blocks), "scale": int(scale or 4), "context": int(context or 0)}


def name_of(arch: dict[str, int]) -> str:
    scale = "" if arch["scale"] == 4 else f"s{arch['scale']}"
    context = f"k{arch['context']}" if arch.get("context") else ""
    return f"c{arch['channels']}b{arch['blocks']}{scale}{context}"


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


def write_report(args: argparse.Namespace, rows: list[dict], inputs: dict[str, float]) -> str:
    """benchmarks/student_arch.{json,md} for the rows so far (written after each candidate, so an
    interrupted search keeps what it measured)."""
    out = Path(args.out)
    cpu = cpu_info()
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "steps": args.steps,
                "teacher": args.teacher,
                "val_dir": args.val_dir,
                "w_feat": args.w_feat,
                "retimed": args.retime,
                "cpu": cpu.as_dict(),
                **inputs,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    kd = "output-level KD" if not args.w_feat else f"output KD + feature mimicry (weight {args.w_feat})"
    lines = [
        f"CPU: {cpu.describe()}.",
        "",
        f"Students distilled ({kd}) for {args.steps} steps from `{args.teacher}`"
        + (f" (a teacher trained for {inputs['teacher_step']} steps)" if inputs.get("teacher_step") else "")
        + f"; validation `{args.val_dir}` "
        f"(degraded input {inputs['input_psnr']:.2f} dB). Second family: the same images under `distill/unseen.py` "
        f"(never trained on; input {inputs['unseen_input_psnr']:.2f} dB), gains in fp32 and INT8, and the share of "
        "the validation gain kept there. Times: median of "
        f"{args.runs} runs on one 1280×720 frame"
        + (", taken again on a quiet machine after training (`--retime`)" if args.retime else " (beside the training)")
        + ", ONNX Runtime CPU, its default threads (one per core), through "
        "the runtime's OnnxSharpener (its conversions included; INT8 = the luma8 form, post-training "
        "quantisation without QAT); CAS on the same frame in the same process for scale. Defocus: the validation "
        f"images blurred (Gaussian sigma 1.2) and JPEG-compressed (quality 70), input "
        f"{inputs['defocus_input_psnr']:.2f} dB. `s2`: the student at 1/2 resolution (2×2 blocks) instead of 1/4; "
        "the INT8 export runs a bodyless one (`b0`) of at most 16 channels at 1/4 resolution in 4×4 blocks "
        "(`distill.export.unshuffled_conv`: the same integers from four times the MACs, zeros included, in less time). "
        "`kN`: a context branch N wide (`distill.models.Context`: the features in 2×2 blocks through 1×1, 3×3, 1×1, "
        "added back), which that form runs on its 1/4-resolution features as they are.",
        "",
        "| student | params | GMAC/720p | fp32 ms | INT8 ms | INT8 ms / CAS ms | PSNR fp32 | gain vs input "
        "| INT8 cost | second family gain fp32 / INT8 | kept | defocus gain (INT8) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["gmac_720p"]):
        kept = r["unseen_gain_db"] / r["gain_db"] if r["gain_db"] > 0 else float("nan")
        lines.append(
            f"| {r['student']} | {r['params']:,} | {r['gmac_720p']:.2f} | {r['ms_fp32']:.1f} | {r['ms_int8']:.1f} | "
            f"{r['ms_int8'] / r['cas_ms']:.2f} | {r['psnr_fp32']:.2f} | {r['gain_db']:+.2f} dB | "
            f"{r['int8_cost_db']:+.3f} dB | {r['unseen_gain_db']:+.2f} / {r['unseen_gain_db_int8']:+.2f} dB | "
            f"{kept:.0%} | {r['defocus_gain_db_int8']:+.2f} dB |"
        )
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--train-dir", default=str(DATA / "train"))
    ap.add_argument("--val-dir", default=str(DATA / "val"))
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--candidates", default=CANDIDATES, help="comma list of CHANNELSxBLOCKS[sSCALE][kCONTEXT]")
    ap.add_argument("--w-feat", type=float, default=0.0, help="feature-mimicry weight (scale-4 students only)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads while training (0: its default)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", default="runs/arch")
    ap.add_argument("--out", default="benchmarks/student_arch")
    ap.add_argument(
        "--retime",
        action="store_true",
        help="train nothing: time the candidates exported under --work again (a quiet machine gives steadier "
        "times than one that trains) and rewrite --out from its JSON",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    frame8 = (rng.random((720, 1280, 3)) * 255).astype(np.uint8)
    if args.retime:
        saved = json.loads(Path(args.out).with_suffix(".json").read_text())
        for key in ("steps", "teacher", "val_dir", "w_feat"):  # as trained; reports before these keys: the flags
            setattr(args, key, saved.get(key, getattr(args, key)))
        rows = [r | timings(Path(args.work) / r["student"], frame8, args.runs) for r in saved["rows"]]
        kept = ("input_psnr", "unseen_input_psnr", "defocus_input_psnr", "teacher_step")
        inputs = {k: saved[k] for k in kept if k in saved}
        print(write_report(args, rows, inputs))
        return

    val = benchmark_set(args.val_dir)
    degraded, clean = [d for d, _ in val], [c for _, c in val]
    input_psnr = score(degraded, clean)["psnr"]
    blurred = [defocused(c) for c in clean]
    blurred_psnr = score(blurred, clean)["psnr"]
    unseen = [unseen_degrade(c, i) for i, c in enumerate(clean)]
    unseen_psnr = score(unseen, clean)["psnr"]
    inputs = {"input_psnr": input_psnr, "unseen_input_psnr": unseen_psnr, "defocus_input_psnr": blurred_psnr}
    inputs["teacher_step"] = load_checkpoint(args.teacher).get("step")
    rows = []
    for arch in map(parse_candidate, args.candidates.split(",")):
        name = name_of(arch)
        work = Path(args.work) / name
        cfg = TrainConfig(
            kind="student",
            model=arch,
            train_dir=args.train_dir,
            val_dir=args.val_dir,
            out=str(work),
            steps=args.steps,
            lr=2e-3,
            eval_every=args.steps,
            teacher=args.teacher,
            w_feat=args.w_feat,
            threads=args.threads,
        )
        ckpt = train(cfg)
        fp32, int8 = work / "student.onnx", work / "student-int8.onnx"
        export_onnx(ckpt, fp32, name, version=1)
        quantize_luma8(ckpt, fp32, int8, degraded[:12])
        model = Student(StudentConfig(**arch))
        model.fold()
        q32, q8 = (score([onnx_method(p)(d) for d in degraded], clean)["psnr"] for p in (fp32, int8))
        u32, u8 = (score([onnx_method(p)(d) for d in unseen], clean)["psnr"] for p in (fp32, int8))
        q8_blur = score([onnx_method(int8)(d) for d in blurred], clean)["psnr"]
        rows.append(
            {
                "student": name,
                **arch,
                "params": sum(p.numel() for p in model.parameters()),
                "gmac_720p": macs(model) / 1e9,
                **timings(work, frame8, args.runs),
                "psnr_fp32": q32,
                "psnr_int8": q8,
                "gain_db": q32 - input_psnr,
                "int8_cost_db": q32 - q8,
                "unseen_gain_db": u32 - unseen_psnr,
                "unseen_gain_db_int8": u8 - unseen_psnr,
                "defocus_gain_db_int8": q8_blur - blurred_psnr,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        report = write_report(args, rows, inputs)
    print(report)


if __name__ == "__main__":
    main()
