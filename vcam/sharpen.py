"""Sharpener: runs the student CNN on every frame through ONNX Runtime.

The model is third-party-replaceable, so it is validated against the public contract on load
and refused with one line naming what is wrong (see `CONTRACT`). The contract has two forms,
declared by the metadata key `vcam.io`:

* `rgb` (the default, what any tool can produce): float32 [1,3,H,W] RGB in [0,1] in and out;
* `luma8` (the shipped student): uint8 [1,1,H,W] luma in (BT.601, as `cv2.COLOR_BGR2GRAY`
  computes it), uint8 [1,1,H,W] luma residual + 128 out, added to B, G and R alike. A
  luma-only network gains nothing from float RGB ends, and they cost: at 720p the same INT8
  student (four blocks, version 1) runs in 8.7 ms this way against 16 ms in the rgb form, and
  the runtime's own conversions (pre + post, inside the pipeline) fall from 1.6 ms to ~0.9 ms.
  With metadata `vcam.luma8_block` = b, both tensors come packed as SpaceToDepth does it,
  [1,b*b,H/b,W/b] (channel by*b + bx holds pixels (b*y + by, b*x + bx)); the runtime packs and
  unpacks, because ONNX Runtime's uint8 SpaceToDepth and DepthToSpace took 1.8 ms of the
  three-block student's 9 ms at 720p where OpenCV, one row phase at a time, adds ~0.4 ms to
  pre + post inside the pipeline (the shipped students use b = 4).

Pre/post-processing is memory-bound (a 720p float32 tensor is 11 MB), so it is written to never
allocate on the hot path and to touch each byte as few times as possible:

* buffers are allocated once per frame size and reused; ORT reads from and writes into them
  through IOBinding, so it allocates nothing per frame either;
* frames are reflect-padded (bottom/right) to `vcam.size_multiple` and cropped back, so any
  frame size (641x481) works with models that downsample internally;
* it runs on the calling thread: splitting it over two cores halved it on an idle machine but
  made it 50 % slower on a busy one (a laptop in a video call is busy), so it stays simple.

The rgb form's conversions:

* the three colour planes live stacked in one (3H+2)xW array, so each uint8 <-> float32
  conversion is a single OpenCV call over all of them. That call is `cv2.normalize(NORM_INF)`,
  the one Python entry point to OpenCV's `Mat::convertTo(scale)` that writes into a given
  array: its scale is alpha / max|src|, and an extra row holds a sentinel that is that
  maximum (255 before the model, 2**60 after it), so the scale is exactly 1/255 or 255.
  Measured inside the pipeline at 720p, the other ways are slower: uint8 -> float32 by
  `np.multiply` per plane 2.1x, by `cv2.addWeighted` 1.3x; float32 -> uint8 by clamping in
  place, then `convertScaleAbs` (whose abs() would fold negatives back up) 1.15x, by
  `cv2.addWeighted` 1.3x. It rounds and saturates exactly as they do: the tensors and frames
  are bit for bit the same, and an identity model returns the frame unchanged;
* a model output holding inf or NaN would make that maximum the wrong one; the sentinel row
  is followed by a row of 1.0 that must come out as 255, and if it does not the frame takes the
  clamp-then-convert path instead, so such a pixel cannot blank the whole frame;
* a partial --strength blends with the float input and saturates in one `addWeighted` per
  channel.

The luma8 form stays in uint8 at both ends: the residual r goes to three channels and one
`cv2.addWeighted(x, 1, r, s, -128 s)` gives round(x + s (r - 128)), saturated; at strength 1
that is exactly clip(x + r - 128). OpenCV computes it in float but in cache-sized blocks, which
after the model has run (the frame no longer in cache) measured 0.65 ms at 720p against
1.05 ms for a uint8 add of the positive and a subtract of the negative part of r.

Frames are BGR HxWx3 (still images: evaluation, pictures) or I420, the pipeline's video format
(vcam/frames.py). On I420 the luma8 form reads Y through a 256-entry table from limited range
(16..235) to the full-range luma it was trained on (within one level of COLOR_BGR2GRAY), adds
the residual to Y alone, scaled by 219/255 into limited-range units, and passes U and V through:
inside the pipeline at 720p, pre 0.29 + post 0.26 ms (before packing) against 0.27 + 0.65 ms on
BGR. The rgb form converts I420 to BGR and back around the model.
"""

from __future__ import annotations

import contextlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vcam import frames
from vcam.errors import ModelError, VcamError

CONTRACT = (
    "the model contract is one input named 'input', float32 [1,3,H,W] RGB in 0..1 with "
    "dynamic H and W, output float32 [1,3,H,W] (with metadata vcam.io=luma8: uint8 "
    "[1,1,H,W] luma in, uint8 [1,1,H,W] luma residual + 128 out, packed [1,b*b,H/b,W/b] "
    "with vcam.luma8_block=b)"
)
IO_FORMS = {"rgb": ("tensor(float)", 3, "RGB"), "luma8": ("tensor(uint8)", 1, "luma")}
AUTO_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SPIN_US = 2000  # see Sharpener.__init__
_SENTINEL = 2.0**60  # a power of two: 255 * 2**60 / 2**60 is exactly 255 in double
# Limited-range Y (16..235) -> the full-range luma luma8 models take, within one level of
# COLOR_BGR2GRAY on the same frame
_Y_TO_LUMA = np.clip(np.rint((np.arange(256) - frames.Y_BLACK) * 255 / frames.Y_RANGE), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def on_cpus(cpus: frozenset[int] | None) -> Iterator[None]:
    """Inside the block the calling thread (only it) runs on `cpus`, such as a Sharpener's
    `caller_cpus`; its own affinity comes back after. None leaves it where it is."""
    if not cpus:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def _thread_ids() -> set[int]:
    """This process's threads (Linux; empty where /proc is not there)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _cpus_apart_from(workers: set[int]) -> frozenset[int] | None:
    """The CPUs none of `workers` is pinned to, or None when they are not pinned (or every CPU
    has one)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    pinned: set[int] = set()
    for tid in workers:
        try:
            cpus = os.sched_getaffinity(tid)
        except OSError:  # the thread has ended
            continue
        if cpus != allowed:
            pinned |= cpus
    free = allowed - pinned
    return frozenset(free) if pinned and free else None


def _friendly(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower()


def _resolve_providers(provider: str | None) -> list[str]:
    """Best available accelerator first; an explicit choice keeps CPU as fallback for its
    unsupported ops (ORT requires that)."""
    # Only those SharpCam knows how to set up; the others a build may list (Azure, ...) do not run it.
    available = [p for p in ort.get_available_providers() if p in AUTO_PROVIDERS]
    if provider is None:
        return [p for p in AUTO_PROVIDERS if p in available]
    wanted = provider.strip().lower()
    for name in available:
        if wanted in (name.lower(), _friendly(name)):
            return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    names = ", ".join(_friendly(p) for p in available)
    raise ModelError(
        f"unknown or unavailable provider {provider!r}; available here: {names} "
        "(cuda/tensorrt need `pip install sharpcam[gpu]`)"
    )


def _provider_options(providers: list[str]) -> list[dict[str, str]]:
    """TensorRT builds an engine per input shape, which takes minutes: cache it across starts."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sharpcam" / "tensorrt"
    return [
        {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
        if p == "TensorrtExecutionProvider"
        else {}
        for p in providers
    ]


def _first_line(exc: BaseException, limit: int = 240) -> str:
    """ORT messages can run to several long lines; the user gets the start of the first."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


class _Form(ABC):
    """Frame <-> tensor conversions of one model form for one frame size. `pre`/`post` take
    BGR frames; the I420 ones convert through BGR unless the form has a direct way."""

    def __init__(self, height: int, width: int) -> None:
        self._height, self._width = height, width
        self._yuv: np.ndarray | None = None  # I420 output, allocated on the first I420 frame
        self._bgr: np.ndarray | None = None  # ... and the BGR frame the generic path converts to

    @abstractmethod
    def pre(self, frame: np.ndarray) -> None: ...

    @abstractmethod
    def post(self, frame: np.ndarray) -> np.ndarray: ...

    def _i420_out(self) -> np.ndarray:
        if self._yuv is None:
            self._yuv = np.empty((self._height * 3 // 2, self._width), np.uint8)
        return self._yuv

    def pre_i420(self, frame: np.ndarray) -> None:
        if self._bgr is None:
            self._bgr = np.empty((self._height, self._width, 3), np.uint8)
        cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420, dst=self._bgr)
        self.pre(self._bgr)

    def post_i420(self, frame: np.ndarray) -> np.ndarray:
        assert self._bgr is not None  # pre_i420 ran first
        return cv2.cvtColor(self.post(self._bgr), cv2.COLOR_BGR2YUV_I420, dst=self._i420_out())


class _RgbFloat(_Form):
    """BGR uint8 frames <-> the rgb form's float32 RGB planes (see the module docstring)."""

    def __init__(self, height: int, width: int, hp: int, wp: int, strength: float) -> None:
        super().__init__(height, width)
        self.strength = strength
        self._padded = np.empty((hp, wp, 3), np.uint8) if (hp, wp) != (height, width) else None
        self._planes_in = np.empty((3 * hp + 2, wp), np.uint8)
        self._planes_in[-2:] = 255  # max|uint8|, so normalize scales by 1/255
        self._bgr_in = [self._planes_in[c * hp : (c + 1) * hp] for c in (2, 1, 0)]  # split order
        self._stack_in = np.empty((3 * hp + 2, wp), np.float32)
        self._stack_out = np.empty((3 * hp + 2, wp), np.float32)
        self._stack_out[-2] = _SENTINEL  # outweighs any finite model output: scale 255 exactly
        self._stack_out[-1] = 1.0  # must come out as 255; checked after every conversion
        self.input = self._stack_in[: 3 * hp].reshape(1, 3, hp, wp)  # bound to ORT
        self.output = self._stack_out[: 3 * hp].reshape(1, 3, hp, wp)  # bound to ORT
        self._planes_out = np.empty((3 * hp + 2, wp), np.uint8)
        self._bgr_out = [self._planes_out[c * hp : c * hp + height, :width] for c in (2, 1, 0)]
        self._out = np.empty((height, width, 3), np.uint8)

    def pre(self, frame: np.ndarray) -> None:
        """BGR uint8 HWC -> reflect-padded RGB float32 CHW in [0,1], into the bound input."""
        if self._padded is not None:
            h, w = frame.shape[:2]
            hp, wp = self._padded.shape[:2]
            frame = cv2.copyMakeBorder(frame, 0, hp - h, 0, wp - w, cv2.BORDER_REFLECT_101, dst=self._padded)
        cv2.split(frame, self._bgr_in)
        cv2.normalize(self._planes_in, self._stack_in, 1.0, 0.0, cv2.NORM_INF, cv2.CV_32F)

    def post(self, frame: np.ndarray) -> np.ndarray:
        """Bound RGB float32 CHW output (cropped) -> BGR uint8 HWC, blended with the input."""
        h, w = frame.shape[:2]
        if self.strength == 1.0:  # round(255 x), saturated to 0..255
            cv2.normalize(self._stack_out, self._planes_out, 255.0 * _SENTINEL, 0.0, cv2.NORM_INF, cv2.CV_8U)
            if self._planes_out[-1, 0] != 255:  # inf/NaN in the output: clamp, then convert
                planes = self._stack_out[:-2]
                cv2.threshold(planes, 0, 0, cv2.THRESH_TOZERO, dst=planes)
                cv2.convertScaleAbs(planes, dst=self._planes_out[:-2], alpha=255.0)
        else:  # blend with the still-bound float input and saturate in one pass
            for c, plane in zip((2, 1, 0), self._bgr_out):
                cv2.addWeighted(
                    self.output[0, c, :h, :w],
                    255.0 * self.strength,
                    self.input[0, c, :h, :w],
                    255.0 * (1.0 - self.strength),
                    0.0,
                    dst=plane,
                    dtype=cv2.CV_8U,
                )
        cv2.merge(self._bgr_out, self._out)
        return self._out


def _row_phases(image: np.ndarray, b: int) -> list[np.ndarray]:
    """Views of rows by, by + b, by + 2b, ... of `image`, for each by < b."""
    h, w = image.shape
    return [image.reshape(h // b, b, w)[:, by] for by in range(b)]


class _Luma8(_Form):
    """BGR or I420 frames <-> the luma8 form's uint8 luma and residual (module docstring),
    packed in blocks of `block` x `block` pixels when the model declares vcam.luma8_block."""

    def __init__(self, height: int, width: int, hp: int, wp: int, strength: float, block: int = 1) -> None:
        super().__init__(height, width)
        self.strength = strength
        b = block
        self.input = np.empty((1, b * b, hp // b, wp // b), np.uint8)  # bound to ORT
        self.output = np.empty((1, b * b, hp // b, wp // b), np.uint8)  # bound to ORT
        self._block = b
        self._packed = b > 1
        # The full-resolution luma and residual: the tensors themselves unless packed
        self._luma_full = np.empty((hp, wp), np.uint8) if self._packed else self.input[0, 0]
        self._residual = np.empty((hp, wp), np.uint8) if self._packed else self.output[0, 0]
        self._padded = (hp, wp) != (height, width)
        self._luma = np.empty((height, width), np.uint8) if self._padded else self._luma_full
        # Packing goes one row phase at a time (rows by, by + b, ...: channels by*b .. by*b +
        # b-1), through a contiguous copy of the phase: OpenCV splits and merges contiguous
        # pixels 10x faster than row-strided ones.
        self._phases = np.empty((b, hp // b, wp) if self._packed else (0, 0, 0), np.uint8)
        self._planes_in = [list(self.input[0, by * b : (by + 1) * b]) for by in range(b)]
        self._planes_out = [list(self.output[0, by * b : (by + 1) * b]) for by in range(b)]
        self._out: np.ndarray | None = None  # BGR output buffers, allocated on the first BGR frame

    def pre(self, frame: np.ndarray) -> None:
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=self._luma)
        self._pad_and_pack()

    def _pad_and_pack(self) -> None:
        if self._padded:
            (h, w), (hp, wp) = self._luma.shape, self._luma_full.shape
            cv2.copyMakeBorder(self._luma, 0, hp - h, 0, wp - w, cv2.BORDER_REFLECT_101, dst=self._luma_full)
        if self._packed:
            self._pack(self._luma_full)

    def _pack(self, luma: np.ndarray, table: np.ndarray | None = None) -> None:
        """Full-resolution luma -> the packed input tensor, through `table` when given (the
        lookup then is the phase's copy)."""
        b = self._block
        for phase, rows, planes in zip(self._phases, _row_phases(luma, b), self._planes_in):
            if table is None:
                np.copyto(phase, rows)
            else:
                cv2.LUT(rows, table, dst=phase)
            cv2.split(phase.reshape(phase.shape[0], -1, b), planes)

    def _merge_phases(self) -> None:
        b = self._block
        for phase, planes in zip(self._phases, self._planes_out):
            cv2.merge(planes, dst=phase.reshape(phase.shape[0], -1, b))

    def _unpack(self) -> np.ndarray:
        """The full-resolution residual (the output tensor itself when nothing is packed)."""
        if self._packed:
            self._merge_phases()
            b, hb, wp = self._phases.shape
            np.copyto(self._residual.reshape(hb, b, wp), self._phases.transpose(1, 0, 2))
        return self._residual

    def post(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._out is None:
            self._residual3 = np.empty((h, w, 3), np.uint8)
            self._out = np.empty((h, w, 3), np.uint8)
        cv2.cvtColor(self._unpack()[:h, :w], cv2.COLOR_GRAY2BGR, dst=self._residual3)
        # x + strength (r - 128), rounded and saturated, in one pass
        cv2.addWeighted(frame, 1.0, self._residual3, self.strength, -128.0 * self.strength, dst=self._out)
        return self._out

    def pre_i420(self, frame: np.ndarray) -> None:
        y = frame[: self._height]
        if self._packed and not self._padded:
            self._pack(y, _Y_TO_LUMA)
        else:
            cv2.LUT(y, _Y_TO_LUMA, dst=self._luma)
            self._pad_and_pack()

    def post_i420(self, frame: np.ndarray) -> np.ndarray:
        """Y + strength (r - 128) in limited-range units; U and V pass through. Packed and
        unpadded, each row phase of the residual is added where it belongs, without first
        unpacking it (one pass less)."""
        h, w, out = self._height, self._width, self._i420_out()
        s = self.strength * frames.Y_RANGE / 255
        if self._packed and not self._padded:
            self._merge_phases()
            b = self._block
            for phase, y, y_out in zip(self._phases, _row_phases(frame[:h], b), _row_phases(out[:h], b)):
                cv2.addWeighted(y, 1.0, phase, s, -128.0 * s, dst=y_out)
        else:
            cv2.addWeighted(frame[:h], 1.0, self._unpack()[:h, :w], s, -128.0 * s, dst=out[:h])
        np.copyto(out[h:], frame[h:])
        return out


class Sharpener:
    """Callable frame -> sharpened frame of the same shape and format: BGR uint8 HxWx3 (still
    images, evaluation) or I420 (the pipeline's video frames, see vcam/frames.py).

    The returned array is an internal buffer reused by the next call of the same size:
    callers copy it if they keep it.
    """

    def __init__(
        self, model_path: str | Path, provider: str | None = None, strength: float = 1.0, threads: int | None = None
    ) -> None:
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
        # 0 = ORT's default: one thread per physical core, its workers pinned to cores. An
        # explicit count leaves them unpinned, which on the 2-core reference machine made 26-40 %
        # of 720p inferences ~1.8x slower (0-0.3 % with the default), so `threads` is for
        # machines shared with other heavy work, not for speed.
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # Worker threads spin for at most SPIN_US after their last piece of work, then sleep:
        # long enough to stay awake from one layer to the next, short enough to sleep through
        # the wait for the next camera frame (high CPU is the top complaint about virtual-camera
        # tools). At 720p and 30 fps on 2 cores: no spinning p50/p95 10.8/19.4 ms at 54 % CPU
        # (a worker that fell asleep mid-frame leaves its half of a layer late), 2 ms of
        # spinning 8.8/9.9 ms at 59 %, unbounded spinning 8.8/9.0 ms at 127 %. ORT's
        # session.force_spinning_stop (no spinning after a run) made runs slower: p50 14.1
        # against 11.8 ms, alternating in one process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_US))
        options.log_severity_level = 4  # every ORT error reaches the user as one ModelError line
        providers = _resolve_providers(provider)
        threads_before = _thread_ids()
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=providers, provider_options=_provider_options(providers)
            )
        except Exception as exc:  # ORT raises several unrelated types for unreadable files
            raise ModelError(
                f"{self.path} is not a readable ONNX model ({_first_line(exc)}); "
                "pass --model PATH to a valid .onnx file"
            ) from exc
        # The session's worker threads start with it, pinned (with the default thread count)
        # one per core. ORT's calling thread does its own share of every layer, and when the
        # scheduler wakes it on a worker's CPU the two take turns there, spinning on each other,
        # while another core idles: 3x the inference time (12.9 against 3.9 ms at 720p) for
        # 2-30 % of the frames of a 720p `vcam bench` run. The pipeline keeps its thread on the
        # CPUs listed here (0 of 610 frames slow in two runs, against 97 of 610 unpinned).
        self.caller_cpus = _cpus_apart_from(_thread_ids() - threads_before)
        self.providers: list[str] = self._session.get_providers()
        if provider is not None and providers[0] not in self.providers:
            raise ModelError(
                f"provider {provider!r} is installed but could not start (missing "
                f"CUDA/TensorRT libraries?); use --provider cpu"
            )
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        luma8 = self.metadata.get("vcam.io") == "luma8"
        self.size_multiple = self._read_positive("vcam.size_multiple")
        block = self._read_positive("vcam.luma8_block") if luma8 else 1
        if self.size_multiple % block:
            raise self._refuse(
                f"metadata vcam.size_multiple={self.size_multiple} is not a multiple of vcam.luma8_block={block}"
            )
        self._output_name = self._check_contract(block)
        self._io_form = partial(_Luma8, block=block) if luma8 else _RgbFloat

        self._binding = self._session.io_binding()
        self._shape: tuple[int, int] | None = None
        self.timings: dict[str, float] = {"pre": 0.0, "infer": 0.0, "post": 0.0}

    def _refuse(self, what: str) -> ModelError:
        return ModelError(f"{self.path}: {what}; {CONTRACT}")

    def _check_contract(self, block: int) -> str:
        form = self.metadata.get("vcam.io", "rgb")
        if form not in IO_FORMS:
            raise self._refuse(f"metadata vcam.io={form!r} is not one of {', '.join(IO_FORMS)}")
        dtype, channels, content = IO_FORMS[form]
        channels *= block * block
        layout = f"[1,{channels},H,W]"
        declared = "" if form == "rgb" else f", vcam.io={form}"
        if block > 1:
            declared += f" in {block}x{block} blocks"
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "input":
            names = ", ".join(repr(i.name) for i in inputs)
            raise self._refuse(f"model inputs are {names}, expected exactly one named 'input'")
        x, y = inputs[0], outputs[0]
        for tensor, role in ((x, "input"), (y, "output")):
            if tensor.type != dtype:
                raise self._refuse(f"{role} {tensor.name!r} is {tensor.type}, expected {dtype} ({content}{declared})")
            if len(tensor.shape) != 4:
                raise self._refuse(f"{role} {tensor.name!r} has shape {tensor.shape}, expected {layout}")
            if isinstance(tensor.shape[1], int) and tensor.shape[1] != channels:
                raise self._refuse(
                    f"{role} {tensor.name!r} has {tensor.shape[1]} channels, expected {channels} ({content}{declared})"
                )
        if isinstance(x.shape[2], int) or isinstance(x.shape[3], int):
            raise self._refuse(
                f"input 'input' has a fixed size {x.shape[2]}x{x.shape[3]}, "
                "expected dynamic H and W (export with dynamic axes)"
            )
        return y.name

    def _read_positive(self, key: str) -> int:
        """A metadata integer; absent means 1 (any size, no packing). A present but unusable
        value is a broken model, not something to guess around."""
        raw = self.metadata.get(key, "1")
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise self._refuse(f"metadata {key}={raw!r} is not a positive integer")
        return value

    def _prepare(self, height: int, width: int) -> None:
        """(Re)allocate every per-frame buffer and bind them; runs only when the size changes."""
        m = self.size_multiple
        hp, wp = -(-height // m) * m, -(-width // m) * m
        self._io = self._io_form(height, width, hp, wp, self.strength)
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        self._binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(self._io.input))
        self._binding.bind_ortvalue_output(self._output_name, ort.OrtValue.ortvalue_from_numpy(self._io.output))
        self._shape = (height, width)

    def _diagnose(self, exc: Exception) -> ModelError:
        """Name the usual culprit, an output that does not keep the input size, by running the
        same input without the preallocated output (error path only)."""
        x = self._io.input
        hp, wp = x.shape[2:]
        what = _first_line(exc)
        try:
            shape = self._session.run([self._output_name], {"input": x})[0].shape
            if tuple(shape) != self._io.output.shape:
                what = f"it returns {list(shape)} for input {list(x.shape)}"
        except Exception:  # the original error is reported instead
            pass
        return ModelError(
            f"{self.path} failed on a {wp}x{hp} input: {what}; the model must "
            f"keep H and W and accept multiples of "
            f"vcam.size_multiple={self.size_multiple}"
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
        if self._shape != (h, w):
            self._prepare(h, w)
        if i420:
            self._io.pre_i420(frame)
        else:
            self._io.pre(frame)
        t1 = time.perf_counter()
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:  # ORT's error types are not part of its public API
            raise self._diagnose(exc) from exc
        t2 = time.perf_counter()
        out = self._io.post_i420(frame) if i420 else self._io.post(frame)
        t3 = time.perf_counter()
        self.timings = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return out
