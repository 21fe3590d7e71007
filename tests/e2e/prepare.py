"""Host side, before the boot: writes what the guest needs into the results share.

usage: python prepare.py SHARE

- sharpen.onnx: the model every scenario runs (tests/support/onnx_models.py's 3x3 Laplacian sharpen).
  It is used even when weights/student.onnx exists: its effect is known (it must raise edge
  energy) and its output is exactly computable here, which a learned model's is not.
- reference.npz: for every phase k of the test pattern,
    inputs[k]   = what vcam reads from the fake webcam: the pattern after one YUV 4:2:0 round
                  trip (pyvirtualcam writes I420, OpenCV reads it back as BGR);
    expected[k] = what a reader of SharpCam must see: the model's output on inputs[k], computed
                  here with ONNX Runtime directly (not through vcam), after a second round trip.
  The round trips are simulated with OpenCV's BT.601 conversions, the ones vcam uses; the fake
  webcam's (libyuv in pyvirtualcam) rounds slightly differently, which the guest's tolerance
  covers.
- pattern.avi: a few pattern frames as a video file, the source of the no-device scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # pattern.py, and tests/support/onnx_models.py

import pattern  # noqa: E402
from support.onnx_models import make_sharpen_model  # noqa: E402


def yuv420_round_trip(bgr: np.ndarray) -> np.ndarray:
    """`bgr` after the trip through an I420 (YU12) device: 2x2 chroma subsampling, 8-bit YUV."""
    return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)


def run_model(session: ort.InferenceSession, bgr: np.ndarray) -> np.ndarray:
    """The model contract by hand: BGR uint8 -> RGB [0,1] NCHW -> model -> clipped BGR uint8."""
    x = bgr[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    (y,) = session.run(None, {"input": x})
    return np.rint(np.clip(y[0], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)[..., ::-1]


def main(share: Path) -> None:
    share.mkdir(parents=True, exist_ok=True)
    model = make_sharpen_model(share / "sharpen.onnx", size_multiple=4)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    frames = [pattern.frame(k) for k in range(pattern.PHASES)]
    inputs = np.stack([yuv420_round_trip(f) for f in frames])
    expected = np.stack([yuv420_round_trip(run_model(session, f)) for f in inputs])
    np.savez(share / "reference.npz", inputs=inputs, expected=expected)

    writer = cv2.VideoWriter(
        str(share / "pattern.avi"), cv2.VideoWriter.fourcc(*"MJPG"), pattern.FPS, (pattern.WIDTH, pattern.HEIGHT)
    )
    for f in frames[:4]:
        writer.write(f)
    writer.release()
    print(f"prepare: model, reference frames ({pattern.PHASES} phases) and clip in {share}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
