"""The models in weights/ as shipped: they follow the public contract, `vcam start` finds the
default one, and the student really restores (a frame degraded like a webcam's gets closer to
the clean one). Nothing here trains; the files are read as users get them."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from distill.export import int16_overflows
from distill.metrics import psnr
from vcam.sharpener import OnnxSharpener
from vcam.tiers import tier_path

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def scene(height: int = 181, width: int = 243) -> np.ndarray:
    """Edges and fine texture at odd sizes: what sharpening is for, and what padding must handle."""
    rng = np.random.default_rng(3)
    img = cv2.resize(rng.integers(40, 215, (12, 16, 3), np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, (width - 30, height - 20)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(6, 30)), y + int(rng.integers(4, 20))), colour, -1)
    cv2.putText(img, "SharpCam 2026", (8, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    return img


def webcam(img: np.ndarray) -> np.ndarray:
    """Defocus then JPEG: two stages of the training degradations, at fixed strengths."""
    blurred = cv2.GaussianBlur(img, (0, 0), 1.2, borderType=cv2.BORDER_REFLECT)
    return cv2.imdecode(cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)


def test_default_model_is_the_shipped_int8_student() -> None:
    path = tier_path("default")
    assert path.resolve() == (WEIGHTS / "student.onnx").resolve()
    sharpener = OnnxSharpener(path)
    assert sharpener.metadata["vcam.name"] == "sharpcam-student"
    assert sharpener.metadata["vcam.quantization"].startswith("int8")
    assert sharpener.metadata["vcam.io"] == "luma8"
    assert sharpener.size_multiple == 4


def test_int8_luma8_student_is_the_fp32_rgb_student_to_int8_precision() -> None:
    degraded = webcam(scene())
    fast = OnnxSharpener(WEIGHTS / "student.onnx")(degraded)
    assert OnnxSharpener(WEIGHTS / "student-fp32.onnx").metadata.get("vcam.io", "rgb") == "rgb"
    assert psnr(fast, OnnxSharpener(WEIGHTS / "student-fp32.onnx")(degraded)) > 40


@pytest.mark.parametrize("name", ["student-fast.onnx", "student.onnx", "student-hq.onnx"])
def test_shipped_int8_models_compute_the_same_on_every_x86_cpu(name: str) -> None:
    """No pair of uint8 x int8 products can saturate AVX2's int16 sums (VNNI has none to
    saturate): read from the graph, so this fails on any machine if a model could differ."""
    assert int16_overflows(onnx.load(str(WEIGHTS / name))) == []


# The fast tier sees 18 pixels across, too few to undo much of this defocus (weights/README.md).
@pytest.mark.parametrize(
    ("name", "gain"),
    [
        ("student-fast.onnx", 0.1),
        ("student.onnx", 0.5),
        ("student-fp32.onnx", 0.5),
        ("student-hq.onnx", 0.5),
        ("teacher.onnx", 0.5),
    ],
)
def test_shipped_model_restores_a_degraded_frame(name: str, gain: float) -> None:
    clean = scene()
    degraded = webcam(clean)
    restored = OnnxSharpener(WEIGHTS / name)(degraded)
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(degraded, clean) + gain
