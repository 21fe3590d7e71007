"""Soak benchmark: 10,000 frames at 720p through the full live pipeline (vcam/soak.py).

Run from the repository root:  python benchmarks/soak.py [--frames N]
Writes benchmarks/soak-<cpu class>.md and .json. The camera is a 30 fps MJPG file rendered from
`vcam bench`'s synthetic scene (decoding it costs what a webcam's MJPG stream costs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import report as report_files
from paths import ROOT

from vcam.bench import synthetic_scene
from vcam.cpu import cpu_info
from vcam.soak import run_soak

LIMITS = {"rss_growth_mb": 10.0, "p95_change": 0.10}


def write_clip(path: Path, width: int, height: int, fps: float, frames: int = 150) -> Path:
    scene = synthetic_scene(width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        writer.write(scene(i))
    writer.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--tier", default=None, help="a shipped tier [default: the one vcam start picks]")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "camera.avi", 1280, 720, 30.0)
        result = run_soak(clip, frames=args.frames, tier=args.tier)
    ok = {
        "rss": result.rss_growth_mb < LIMITS["rss_growth_mb"],
        "p95": result.p95_change_for_host_speed <= LIMITS["p95_change"],
        "drops": result.dropped == 0,
    }
    report = asdict(result) | {"date": time.strftime("%Y-%m-%d %H:%M"), "limits": LIMITS, "passed": ok}
    slug = cpu_info().slug
    out = ROOT / "benchmarks" / f"soak-{slug}"
    lines = [
        f"CPU: {result.cpu}.",
        "",
        f"Soak, {report['date']}: {result.frames} frames of a 30 fps {result.width}x{result.height} MJPG file "
        f"through the live pipeline (model {result.model}, temporal filter, virtual-camera sink writing to "
        f"memory), {result.wall_s:.0f} s, CPU {result.cpu_percent:.0f}% of one core.",
        "",
        "| measure | value | limit | |",
        "|---|---|---|---|",
        f"| RSS after warm-up -> end | {result.rss_after_warmup_mb} -> {result.rss_end_mb} MB "
        f"(+{result.rss_growth_mb} MB) | < {LIMITS['rss_growth_mb']:g} MB | {'ok' if ok['rss'] else 'FAIL'} |",
        f"| e2e p95, first -> last 1,000 frames | {result.e2e_p95_first_ms} -> {result.e2e_p95_last_ms} ms "
        f"({result.p95_change:+.1%}) | | |",
        f"| the host's speed: reference workload before each | {result.reference_first_ms} -> "
        f"{result.reference_last_ms} ms ({result.reference_last_ms / result.reference_first_ms - 1:+.1%}) | | |",
        f"| e2e p95 change with the host's own change divided out | {result.p95_change_for_host_speed:+.1%} "
        f"| within 10 % | {'ok' if ok['p95'] else 'FAIL'} |",
        f"| frames dropped | {result.dropped} | 0 | {'ok' if ok['drops'] else 'FAIL'} |",
    ]
    lines += ["", "p95 per stage, first -> last window (ms):", ""]
    lines += [
        f"- {stage}: {result.stages_p95_first_ms[stage]} -> {result.stages_p95_last_ms[stage]}"
        for stage in result.stages_p95_first_ms
    ]
    report_files.write(out, report, lines)


if __name__ == "__main__":
    main()
