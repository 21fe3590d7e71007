"""Sharpeners: what the pipeline calls on every frame, and the one that runs the student CNN.

`Sharpener` is the protocol (the classical baselines in vcam/baselines.py fit it too);
`OnnxSharpener` runs any model that follows the contract (vcam/contract.py) through ONNX Runtime,
checking it on load so a broken model is refused before the camera turns on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort

from vcam import contract, frames
from vcam.errors import ModelError, VcamError
from vcam.forms import FORMS, Form
from vcam.options import check
from vcam.session import first_line, on_cpus, open_session


class Sharpener(Protocol):
    """Frame -> sharpened frame of the same shape: I420 (vcam/frames.py) in the pipeline.

    `timings` is the last call's split in ms: "pre" (frame to tensor), "infer", "post" (back);
    a sharpener without conversions books everything as "infer". `calling_thread()` is the
    setting the caller's loop runs under while it uses this sharpener."""

    timings: dict[str, float]

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...

    def calling_thread(self) -> contextlib.AbstractContextManager[None]: ...


class OnnxSharpener:
    """Callable frame -> sharpened frame of the same shape and format: BGR uint8 HxWx3 (still
    images, evaluation) or I420 (the pipeline's video frames).

    The returned array is an internal buffer reused by the next call of the same size: callers
    copy it if they keep it. `strength` blends camera (0) and model output (1).
    """

    def __init__(
        self, model_path: str | Path, provider: str | None = None, strength: float = 1.0, threads: int | None = None
    ) -> None:
        if threads is not None and threads < 1:
            raise VcamError(f"threads must be at least 1 (got {threads})")
        self._form: Form | None = None
        self.strength = strength
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}; name an existing ONNX model")
        session = open_session(self.path, provider, threads)
        self._session = session.ort
        self.providers = session.providers
        self.caller_cpus = session.caller_cpus
        """The CPUs the calling thread should run on: those the session's workers are not pinned to."""
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.contract = contract.read(self.path, self.metadata, self._session.get_inputs(), self._session.get_outputs())
        self.size_multiple = self.contract.size_multiple
        self._binding = self._session.io_binding()
        self._shape: tuple[int, int] | None = None
        self.timings: dict[str, float] = {"pre": 0.0, "infer": 0.0, "post": 0.0}

    @property
    def strength(self) -> float:
        """The blend of camera (0) and model output (1); a new value applies from the next frame."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        check("strength", value)
        self._strength = float(value)
        if self._form is not None:
            self._form.strength = self._strength

    @contextlib.contextmanager
    def calling_thread(self) -> Iterator[None]:
        """Off the model's worker CPUs, and OpenCV single-threaded: its second thread would fight
        ORT's spinning workers for the other core and make the stages after the model slower."""
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with on_cpus(self.caller_cpus):
                yield
        finally:
            cv2.setNumThreads(threads)

    def _prepare(self, height: int, width: int) -> Form:
        """(Re)allocate every per-frame buffer and bind them; runs only when the size changes."""
        c = self.contract
        form = FORMS[c.form](height, width, c.size_multiple, self.strength, c.block)
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        self._binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(form.input))
        self._binding.bind_ortvalue_output(c.output_name, ort.OrtValue.ortvalue_from_numpy(form.output))
        self._form, self._shape = form, (height, width)
        return form

    def _diagnose(self, form: Form, exc: Exception) -> ModelError:
        """Name the usual culprit, an output that does not keep the input size, by running the
        same input without the preallocated output (error path only)."""
        x = form.input
        hp, wp = x.shape[2:]
        what = first_line(exc)
        try:
            shape = self._session.run([self.contract.output_name], {"input": x})[0].shape
            if tuple(shape) != form.output.shape:
                what = f"it returns {list(shape)} for input {list(x.shape)}"
        except Exception:  # the original error is reported instead
            pass
        return ModelError(
            f"{self.path} failed on a {wp}x{hp} input: {what}; the model must keep H and W and accept "
            f"multiples of vcam.size_multiple={self.size_multiple}"
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        i420 = frame.ndim == 2
        if i420:
            w, h = frames.size(frame)
        elif frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VcamError(f"expected an HxWx3 uint8 BGR frame or an I420 frame, got {frame.dtype} {frame.shape}")
        else:
            h, w = frame.shape[:2]
        form = self._form if self._shape == (h, w) and self._form is not None else self._prepare(h, w)
        if i420:
            form.pre_i420(frame)
        else:
            form.pre(frame)
        t1 = time.perf_counter()
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:  # ORT's error types are not part of its public API
            raise self._diagnose(form, exc) from exc
        t2 = time.perf_counter()
        out = form.post_i420(frame) if i420 else form.post(frame)
        t3 = time.perf_counter()
        self.timings = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return out
