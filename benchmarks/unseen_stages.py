"""What each stage of the unseen degradation family costs the shipped models.

The quality report (`make quality`) shows how much of its validation gain each model keeps on
the second degradation family (`distill/unseen.py`). This harness says where the rest goes: it
scores the models on the validation images under the benchmark degradation, under the whole
unseen family, and under the unseen family without each of its stages in turn (every other
random draw unchanged). A stage whose removal brings a model's gain back is one the training
mix does not prepare it for.

Run from the repository root:  python benchmarks/unseen_stages.py [--val DIR] [--model NAME=PATH ...]
Writes benchmarks/unseen_stages.md and benchmarks/unseen_stages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from paths import DATA, ROOT

from distill.data import DataError, benchmark_set
from distill.evaluate import onnx_method
from distill.metrics import psnr
from distill.unseen import STAGES, unseen_degrade

MODELS = {
    "teacher": "weights/teacher.onnx",
    "student-fast": "weights/student-fast.onnx",
    "student": "weights/student.onnx",
    "student-hq": "weights/student-hq.onnx",
}


def chains(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """The degraded validation images of every chain, by chain name."""
    clean = [c for _, c in pairs]
    sets = {
        "benchmark degradation": [d for d, _ in pairs],
        "unseen family": [unseen_degrade(c, i) for i, c in enumerate(clean)],
    }
    for stage in STAGES:
        sets[f"unseen without {stage}"] = [unseen_degrade(c, i, without=stage) for i, c in enumerate(clean)]
    return sets


def measure(val: Path, models: dict[str, str]) -> dict[str, Any]:
    """Mean PSNR of the degraded input and each model's gain over it, per degradation chain."""
    pairs = benchmark_set(val)
    clean = [c for _, c in pairs]
    methods = {name: onnx_method(ROOT / path) for name, path in models.items()}
    rows = {}
    for chain, degraded in chains(pairs).items():
        base = float(np.mean([psnr(d, c) for d, c in zip(degraded, clean)]))
        gains = {
            name: float(np.mean([psnr(method(d), c) for d, c in zip(degraded, clean)])) - base
            for name, method in methods.items()
        }
        rows[chain] = {"input_psnr": base, "gain": gains}
        print(f"{chain}: input {base:.2f} dB, " + ", ".join(f"{n} {g:+.2f}" for n, g in gains.items()), flush=True)
    return {"val": os.path.relpath(val, ROOT), "images": len(pairs), "models": models, "chains": rows}


def to_markdown(report: dict[str, Any]) -> str:
    names = list(report["models"])
    bench = report["chains"]["benchmark degradation"]["gain"]
    lines = [
        "# What each unseen stage costs",
        "",
        f"Validation images ({report['images']}, `{report['val']}`) under the benchmark degradation, the unseen "
        "family (`distill/unseen.py`) and the unseen family without one stage (its other random draws "
        "unchanged). Each cell: the model's gain over the degraded input in dB and, in brackets, the share "
        "of its benchmark gain it keeps. Regenerate: `python benchmarks/unseen_stages.py`.",
        "",
        "| chain | input dB | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for chain, row in report["chains"].items():
        cells = [f"{row['gain'][n]:+.2f} ({100 * row['gain'][n] / bench[n]:.0f} %)" for n in names]
        lines.append(f"| {chain} | {row['input_psnr']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=Path, default=DATA / "val", help="validation images (default: %(default)s)")
    parser.add_argument(
        "--model", action="append", metavar="NAME=PATH", help="an ONNX model (repeatable; default: the shipped ones)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "unseen_stages", help="output stem")
    args = parser.parse_args()
    for spec in args.model or []:
        if "=" not in spec:
            parser.error(f"--model takes NAME=PATH, got {spec!r}")
    models = dict(spec.split("=", 1) for spec in args.model) if args.model else MODELS
    try:
        report = measure(args.val, models)
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
