"""Training curves: a run's `metrics.jsonl` drawn as loss and validation PSNR, and runs joined
into one history, so that a model trained in stages (grown, restarted, fine-tuned) shows its
whole road in one picture (benchmarks/training/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distill.data import write_atomically


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; ValueError naming the file and line of one that is not a
    `distill train` row (a JSON object with its step and time)."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or "time" not in row:
            raise ValueError(f"{path} line {n} is not a row of `distill train`'s metrics.jsonl")
        rows.append(row)
    return rows


def curves_path(metrics_path: Path) -> Path:
    """Where a metrics file's picture goes: `metrics.jsonl` → `curves.png`,
    `student-hq-metrics.jsonl` → `student-hq-curves.png`."""
    return metrics_path.with_name(metrics_path.name.replace("metrics", "curves")).with_suffix(".png")


def append_stage(history: Path, run: Path) -> int:
    """Append a later stage's metrics (`run`, counted from its own step 0) to `history`, its
    steps and seconds continuing where the history ends, and redraw the history's curves.
    Returns the last step of the joined history; refuses a stage it already ends with."""
    if history.resolve() == run.resolve():
        raise ValueError(f"{run} cannot be joined onto itself")
    past, later = read_metrics(history), read_metrics(run)
    if not later:
        raise ValueError(f"{run} holds no metrics")
    if len(past) > len(later):  # the same rows, shifted by what came before them: joined already
        before, tail = past[-len(later) - 1], past[-len(later) :]
        shifted = [r | {"step": r["step"] - before["step"], "time": 0} for r in tail]
        if shifted == [r | {"time": 0} for r in later]:
            raise ValueError(f"{history} already ends with {run}'s stage")
    step, seconds = (past[-1]["step"], past[-1]["time"]) if past else (0, 0.0)
    rows = past + [r | {"step": r["step"] + step, "time": round(r["time"] + seconds, 1)} for r in later]
    write_atomically(history, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows)))
    plot_curves(history, curves_path(history))
    return int(rows[-1]["step"])


def plot_curves(metrics_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(metrics_path)
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_psnr" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], lw=0.8)
    a.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    b.plot([r["step"] for r in val_rows], [r["val_psnr"] for r in val_rows], marker="o", ms=3)
    if val_rows and "input_psnr" in val_rows[0]:
        b.axhline(val_rows[0]["input_psnr"], color="gray", ls="--", label="degraded input")
        b.legend()
    b.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
    for axis in (a.xaxis, b.xaxis):  # "80k": tens of thousands of steps spelled out overlap
        axis.set_major_formatter(lambda s, _: f"{s / 1000:g}k" if abs(s) >= 1000 else f"{s:g}")
    steps, hours = [r["step"] for r in val_rows], [r["time"] / 3600 for r in val_rows]
    if len(steps) > 1:  # a run resumed across sessions: how long it took, not just how many steps
        top = b.secondary_xaxis(
            "top", functions=(lambda s: np.interp(s, steps, hours), lambda h: np.interp(h, hours, steps))
        )
        # Only hours the run covers: beyond its ends the mapping is flat and the labels pile up.
        top.set_xticks([t for t in MaxNLocator(6).tick_values(hours[0], hours[-1]) if hours[0] <= t <= hours[-1]])
        top.set_xlabel("hours of training")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
