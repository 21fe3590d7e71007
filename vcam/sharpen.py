"""Sharpener: runs the student CNN on every frame through ONNX Runtime.

The model is third-party-replaceable, so it is validated against the public contract on load
and refused with one line naming what is wrong (see `CONTRACT`).

Pre/post-processing is memory-bound (a 720p float32 tensor is 11 MB), so it is written to never
allocate on the hot path and to touch each byte as few times as possible:

* buffers are allocated once per frame size and reused; ORT reads from and writes into them
  through IOBinding, so it allocates nothing per frame either;
* frames are reflect-padded (bottom/right) to `vcam.size_multiple` and cropped back, so any
  frame size (641x481) works with models that downsample internally;
* the work is split into horizontal bands run on a small thread pool: one core cannot saturate
  memory bandwidth, two roughly halve the time (measured 2.5 ms -> 1.2 ms per 720p frame);
* clamping to [0,1] uses an in-place threshold, after which OpenCV's fast saturating
  `convertScaleAbs` is exact (its abs() only matters for negatives, which are gone).
"""

from __future__ import annotations

import importlib.resources
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import onnxruntime as ort

from vcam.errors import ModelError, VcamError

CONTRACT = ("the model contract is one input named 'input', float32 [1,3,H,W] RGB in 0..1 with "
            "dynamic H and W, output float32 [1,3,H,W]")
AUTO_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Beyond a few bands the per-band dispatch costs more than the extra memory bandwidth buys.
MAX_BANDS = 4


def default_model_path() -> Path:
    """The model shipped in the wheel (`weights/student.onnx`), used when --model is not given."""
    path = Path(str(importlib.resources.files("vcam.weights") / "student.onnx"))
    if not path.is_file():
        raise ModelError(f"no default model is installed ({path} is missing); "
                         "pass --model PATH to an ONNX model")
    return path


def _friendly(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower()


def _resolve_providers(provider: str | None) -> list[str]:
    """Best available accelerator first; an explicit choice keeps CPU as fallback for its
    unsupported ops (ORT requires that)."""
    available = ort.get_available_providers()
    if provider is None:
        return [p for p in AUTO_PROVIDERS if p in available]
    wanted = provider.strip().lower()
    for name in available:
        if wanted in (name.lower(), _friendly(name)):
            return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    names = ", ".join(_friendly(p) for p in available)
    raise ModelError(f"unknown or unavailable provider {provider!r}; available here: {names} "
                     "(cuda/tensorrt need `pip install sharpcam[gpu]`)")


def _provider_options(providers: list[str]) -> list[dict[str, str]]:
    """TensorRT builds an engine per input shape, which takes minutes: cache it across starts."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sharpcam" / "tensorrt"
    return [{"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
            if p == "TensorrtExecutionProvider" else {} for p in providers]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Sharpener:
    """Callable BGR uint8 frame -> sharpened BGR uint8 frame of the same shape.

    The returned array is an internal buffer reused by the next call of the same size:
    callers copy it if they keep it.
    """

    def __init__(self, model_path: str | Path, provider: str | None = None,
                 strength: float = 1.0, threads: int | None = None) -> None:
        if not 0.0 <= strength <= 1.0:
            raise VcamError(f"--strength must be between 0 and 1 (got {strength})")
        if threads is not None and threads < 1:
            raise VcamError(f"--threads must be at least 1 (got {threads})")
        self.strength = float(strength)
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}; pass --model PATH to an ONNX model")

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0  # 0 = ORT default: one per physical core
        options.inter_op_num_threads = 1
        # A daemon waits for the camera between frames: spinning threads would burn those idle
        # cores (high CPU is the top complaint about virtual-camera tools).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers = _resolve_providers(provider)
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=providers,
                                                 provider_options=_provider_options(providers))
        except Exception as exc:  # ORT raises several unrelated types for unreadable files
            raise ModelError(f"{self.path} is not a readable ONNX model ({_first_line(exc)}); "
                             "pass --model PATH to a valid .onnx file") from exc
        self.providers: list[str] = self._session.get_providers()
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self._output_name = self._check_contract()
        self.size_multiple = self._read_size_multiple()

        bands = min(threads or os.cpu_count() or 1, MAX_BANDS)
        self._pool = ThreadPoolExecutor(bands - 1, "vcam-sharpen") if bands > 1 else None
        self._bands = bands
        self._binding = self._session.io_binding()
        self._shape: tuple[int, int] | None = None
        self.timings: dict[str, float] = {"pre": 0.0, "infer": 0.0, "post": 0.0}

    def _refuse(self, what: str) -> ModelError:
        return ModelError(f"{self.path}: {what}; {CONTRACT}")

    def _check_contract(self) -> str:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "input":
            names = ", ".join(repr(i.name) for i in inputs)
            raise self._refuse(f"model inputs are {names}, expected exactly one named 'input'")
        x, y = inputs[0], outputs[0]
        if x.type != "tensor(float)":
            raise self._refuse(f"input 'input' is {x.type}, expected tensor(float)")
        if len(x.shape) != 4:
            raise self._refuse(f"input 'input' has shape {x.shape}, expected [1,3,H,W]")
        if isinstance(x.shape[1], int) and x.shape[1] != 3:
            raise self._refuse(f"input 'input' has {x.shape[1]} channels, expected 3 (RGB)")
        if isinstance(x.shape[2], int) or isinstance(x.shape[3], int):
            raise self._refuse(f"input 'input' has a fixed size {x.shape[2]}x{x.shape[3]}, "
                               "expected dynamic H and W (export with dynamic axes)")
        if y.type != "tensor(float)":
            raise self._refuse(f"output {y.name!r} is {y.type}, expected tensor(float)")
        if len(y.shape) != 4:
            raise self._refuse(f"output {y.name!r} has shape {y.shape}, expected [1,3,H,W]")
        if isinstance(y.shape[1], int) and y.shape[1] != 3:
            raise self._refuse(f"output {y.name!r} has {y.shape[1]} channels, expected 3 (RGB)")
        return y.name

    def _read_size_multiple(self) -> int:
        """Absent means the model accepts any size (1); a present but unusable value is a
        broken model, not something to guess around."""
        raw = self.metadata.get("vcam.size_multiple", "1")
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise self._refuse(f"metadata vcam.size_multiple={raw!r} is not a positive integer")
        return value

    def _prepare(self, height: int, width: int) -> None:
        """(Re)allocate every per-frame buffer; runs only when the frame size changes."""
        m = self.size_multiple
        hp, wp = -(-height // m) * m, -(-width // m) * m
        self._padded = np.empty((hp, wp, 3), np.uint8) if (hp, wp) != (height, width) else None
        self._planes = [np.empty((hp, wp), np.uint8) for _ in range(3)]
        self._input = np.empty((1, 3, hp, wp), np.float32)
        self._output = np.empty((1, 3, hp, wp), np.float32)
        self._out = np.empty((height, width, 3), np.uint8)
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        self._binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(self._input))
        self._binding.bind_ortvalue_output(self._output_name,
                                           ort.OrtValue.ortvalue_from_numpy(self._output))
        self._shape = (height, width)

    def _in_bands(self, work: Callable[[int, int], None], rows: int) -> None:
        edges = [rows * i // self._bands for i in range(self._bands + 1)]
        futures = [self._pool.submit(work, a, b) for a, b in zip(edges[1:-1], edges[2:])] \
            if self._pool else []
        work(edges[0], edges[1])
        for future in futures:
            future.result()

    def _pre_band(self, top: int, bottom: int) -> None:
        """BGR uint8 HWC rows -> RGB float32 CHW rows in [0,1]."""
        planes = [p[top:bottom] for p in self._planes]
        cv2.split(self._src[top:bottom], planes)
        for c in range(3):  # model channel c is BGR plane 2-c
            np.multiply(planes[2 - c], np.float32(1 / 255), out=self._input[0, c, top:bottom])

    def _post_band(self, top: int, bottom: int) -> None:
        """RGB float32 CHW rows (cropped) -> BGR uint8 HWC rows, blended with the input."""
        h, w = self._shape
        planes = [p[top:bottom, :w] for p in self._planes]
        for c in range(3):
            model = self._output[0, 2 - c, top:bottom, :w]
            cv2.threshold(model, 0, 0, cv2.THRESH_TOZERO, dst=model)
            cv2.convertScaleAbs(model, dst=planes[c], alpha=255.0)
        out = self._out[top:bottom]
        cv2.merge(planes, out)
        if self.strength < 1.0:
            cv2.addWeighted(out, self.strength, self._frame[top:bottom], 1.0 - self.strength, 0.0,
                            dst=out)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VcamError(f"expected an HxWx3 uint8 BGR frame, got {frame.dtype} {frame.shape}")
        t0 = time.perf_counter()
        h, w = frame.shape[:2]
        if self._shape != (h, w):
            self._prepare(h, w)
        self._frame = frame
        self._src = frame
        if self._padded is not None:
            hp, wp = self._padded.shape[:2]
            self._src = cv2.copyMakeBorder(frame, 0, hp - h, 0, wp - w, cv2.BORDER_REFLECT_101,
                                           dst=self._padded)
        self._in_bands(self._pre_band, self._src.shape[0])
        t1 = time.perf_counter()
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:  # ORT's error types are not part of its public API
            raise ModelError(f"{self.path} failed on a {w}x{h} frame ({_first_line(exc)}); the "
                             f"model must keep H and W and accept multiples of "
                             f"vcam.size_multiple={self.size_multiple}") from exc
        t2 = time.perf_counter()
        self._in_bands(self._post_band, h)
        t3 = time.perf_counter()
        self.timings = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return self._out
