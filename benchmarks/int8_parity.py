"""Do the shipped INT8 models compute the same picture on every CPU class? A parity record.

Runs each shipped INT8 model on fixed frames (a textured synthetic 720p frame and, when given,
frames of a real clip), hashes the outputs, and stores the digests under this CPU's ISA class in
benchmarks/int8_parity.json. Run it on each CPU class a session lands on: the structural check
(`distill.export.int16_overflows`) says the outputs must agree; this shows that they do.

`--emulate Haswell` also runs them under QEMU's user-mode emulation of that CPU (Debian's
qemu-user), which has AVX2 and no VNNI, so ONNX Runtime takes the kernels that saturate: the AVX2
class checked on any host. A canary, a convolution whose 8-bit weights do saturate there, must
come out different under emulation on a VNNI host, or the emulator did not take that path.
Every run compares this host's digests with the record's other CPU classes (on the same frames
and model files) and exits 1 when any differs; `--check` does so without writing the record (CI),
so on an AVX2 host it checks against the recorded VNNI digests.

    python benchmarks/int8_parity.py [--clip ../shared/data/video/vtest.avi] [--emulate Haswell [--check]]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from vcam.cpu import cpu_info
from vcam.errors import VcamError
from vcam.frames import to_i420
from vcam.sharpener import OnnxSharpener
from vcam.tiers import TIERS, tier_path

OUT = Path(__file__).with_name("int8_parity.json")
EMULATION_TIMEOUT_S = 900
CANARY = "canary (8-bit weights: saturates without VNNI)"


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


def canary_digest() -> str:
    """A QDQ 3×3 convolution with weights ±127 on inputs near 255: two adjacent products add up
    to ~64,000, beyond the int16 that AVX2's vpmaddubsw saturates at, so its output depends on
    the CPU class, as the shipped models' must not."""
    w = np.full((16, 16, 3, 3), 127, np.int8)
    w[:, :, 1, 1] = -127
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.full(16, 1e-4, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(16, np.int8), "w_zero"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "x_zero"),
        numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "y_zero"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zero"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wf"], axis=0),
        helper.make_node("Conv", ["xf", "wf"], ["yf"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["yf", "y_scale", "y_zero"], ["y"]),
    ]
    shape = [1, 16, 32, 32]
    graph = helper.make_graph(
        nodes,
        "canary",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(200, 256, shape, dtype=np.uint8)
    return hashlib.sha256(session.run(None, {"x": x})[0].tobytes()).hexdigest()[:16]


def digests(inputs: list[np.ndarray]) -> dict[str, str]:
    """Output digest per shipped INT8 model file (named with its hash) on `inputs`, and the canary's."""
    out = {}
    for tier in TIERS:
        path = tier_path(tier)
        sharpener = OnnxSharpener(path, provider="cpu")
        h = hashlib.sha256()
        for frame in inputs:
            h.update(sharpener(to_i420(frame)).tobytes())
        out[f"{path.name} {hashlib.sha1(path.read_bytes()).hexdigest()[:12]}"] = h.hexdigest()[:16]
    out[CANARY] = canary_digest()
    return out


def emulated_digests(cpu: str, clip: str | None) -> dict[str, str]:
    """`digests` computed by this script under `qemu-x86_64 -cpu <cpu>`."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        sys.exit("qemu-x86_64 is not installed; install Debian's qemu-user (tests/e2e/install-deps.sh does)")
    command = [qemu, "-cpu", cpu, sys.executable, __file__, "--digests"] + (["--clip", clip] if clip else [])
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=EMULATION_TIMEOUT_S)
        return json.loads(run.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        sys.exit(f"the emulated run took over {EMULATION_TIMEOUT_S} s; is the machine busy?")
    except (IndexError, json.JSONDecodeError):
        lines = [line for line in run.stderr.splitlines() if "TCG doesn't support" not in line]
        sys.exit(f"the emulated run under QEMU {cpu} failed: {(lines or ['no output'])[-1]}")


def verdict(ours: dict[str, str], theirs: dict[str, str]) -> str:
    """'same', 'DIFFERENT' or 'other model files', over the model files both ran."""
    shared = [k for k in ours if k in theirs and k != CANARY]
    if not shared:
        return "other model files"
    text = "same" if all(ours[k] == theirs[k] for k in shared) else "DIFFERENT"
    if len(shared) < len(ours) - (CANARY in ours):
        text += f" for the {len(shared)} model files both ran"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=None, help="a video whose first frames are also hashed")
    ap.add_argument("--emulate", metavar="CPU", help="also run under qemu-x86_64 -cpu CPU (an AVX2 one: Haswell)")
    ap.add_argument("--check", action="store_true", help="compare only (no record written); fail on a difference")
    ap.add_argument("--digests", action="store_true", help=argparse.SUPPRESS)  # the emulated child's mode
    args = ap.parse_args()
    inputs = frames(args.clip)
    try:
        ours = digests(inputs)
    except VcamError as e:
        sys.exit(f"error: {e}")
    if args.digests:
        print(json.dumps(ours))
        return
    host = cpu_info()
    frame_count = len(inputs)
    runs = {host.isa: {"cpu": host.describe(), "outputs": ours}}
    if args.emulate:
        emulated = emulated_digests(args.emulate, args.clip)
        if emulated[CANARY] == ours[CANARY] and host.isa != "AVX2":
            sys.exit(f"the canary computed the same under QEMU {args.emulate}: it did not run the saturating kernels")
        runs[f"{args.emulate} (QEMU user mode)"] = {
            "cpu": f"QEMU {args.emulate} on {host.describe()}",
            "outputs": emulated,
        }

    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    if not args.check:
        for name, run in runs.items():
            record[name] = run | {"date": time.strftime("%Y-%m-%d"), "frames": frame_count, "clip": args.clip}
        OUT.write_text(json.dumps(record, indent=2) + "\n")
    # This host's digests against the emulated run's and every recorded one on the same frames.
    compared = [(name, run) for name, run in runs.items() if run["outputs"] is not ours]
    compared += [
        (f"{name}, recorded {r['date']}", r)
        for name, r in record.items()
        if r["frames"] == frame_count and r["clip"] == args.clip and r["outputs"] is not ours
    ]
    failed = False
    for name, run in compared:
        result = verdict(ours, run["outputs"])
        failed |= result.startswith("DIFFERENT")
        print(f"{host.isa} here vs {name:42} {run['cpu']}: {result}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
