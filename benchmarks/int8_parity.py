"""Do the shipped INT8 models compute the same picture on every CPU class? A parity record.

Runs each shipped INT8 model on fixed frames (a textured synthetic 720p frame and, when given,
frames of a real clip), hashes the outputs, and stores the digests under this CPU's ISA class in
benchmarks/int8_parity.json. Run it on each CPU class a session lands on: the structural check
(`distill.export.int16_overflows`) says the outputs must agree; this shows that they do.

    python benchmarks/int8_parity.py [--clip ../shared/data/video/vtest.avi]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from vcam.cpu import cpu_info
from vcam.frames import to_i420
from vcam.sharpener import OnnxSharpener
from vcam.tiers import TIERS, tier_path

OUT = Path(__file__).with_name("int8_parity.json")


def frames(clip: str | None) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (90, 160, 3), np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC)
    out = [texture]
    if clip:
        capture = cv2.VideoCapture(clip)
        for _ in range(3):
            ok, frame = capture.read()
            if ok:
                out.append(frame)
        capture.release()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=None, help="a video whose first frames are also hashed")
    args = ap.parse_args()
    inputs = frames(args.clip)
    digests = {}
    for tier in TIERS:
        path = tier_path(tier)
        sharpener = OnnxSharpener(path, provider="cpu")
        h = hashlib.sha256()
        for frame in inputs:
            h.update(sharpener(to_i420(frame)).tobytes())
        digests[f"{path.name} {hashlib.sha1(path.read_bytes()).hexdigest()[:12]}"] = h.hexdigest()[:16]
    cpu = cpu_info()
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    record[cpu.isa] = {
        "cpu": cpu.describe(),
        "date": time.strftime("%Y-%m-%d"),
        "frames": len(inputs),
        "clip": args.clip,
        "outputs": digests,
    }
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    for isa, r in record.items():
        shared = {k: v for k, v in r["outputs"].items() if k in digests}  # the model files both ran
        if r["frames"] != len(inputs) or not shared:
            verdict = "other frames or model files"
        else:
            verdict = "same" if all(digests[k] == v for k, v in shared.items()) else "DIFFERENT"
            if len(shared) < len(digests):
                verdict += f" for the {len(shared)} of {len(digests)} model files it ran"
        print(f"{isa:14} {r['cpu']}, {r['date']}: {verdict}")


if __name__ == "__main__":
    main()
