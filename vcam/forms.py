"""Frame <-> tensor conversions, one class per I/O form of the model contract (vcam/contract.py).

Adding a form is a class here and an entry in `FORMS`. The conversions are memory-bound, so each
touches every byte as few times as it can, writes into buffers allocated once per frame size,
and runs on the calling thread (splitting it over cores helps an idle machine and hurts the busy
one of a video call).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from vcam import frames

_SENTINEL = 2.0**60  # a power of two: 255 * 2**60 / 2**60 is exactly 255 in double
# Limited-range Y (16..235) -> the full-range luma luma8 models take, within one level of
# COLOR_BGR2GRAY on the same frame
Y_TO_LUMA = np.clip(np.rint((np.arange(256) - frames.Y_BLACK) * 255 / frames.Y_RANGE), 0, 255).astype(np.uint8)


class Form(ABC):
    """Frame <-> tensor conversions of one I/O form for one frame size, into the `input` and
    `output` arrays ORT reads and writes (bound once: nothing is allocated per frame). Frames are
    reflect-padded bottom/right to the model's size multiple and cropped back, so any frame size
    works. `pre`/`post` take BGR frames; the I420 ones convert through BGR unless the form has a
    direct way.

    Class attributes say what the form's tensors are, for the contract check (vcam/contract.py).
    """

    dtype: str  # ORT's tensor type name
    channels: int  # per pixel, before packing
    content: str  # what the channels hold, for error messages

    def __init__(self, height: int, width: int, size_multiple: int = 1, strength: float = 1.0, block: int = 1) -> None:
        m = size_multiple
        self._height, self._width = height, width
        self._hp, self._wp = -(-height // m) * m, -(-width // m) * m
        self.strength = strength
        self.input: np.ndarray
        self.output: np.ndarray
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


class RgbFloat(Form):
    """BGR uint8 frames <-> float32 RGB planes in [0, 1].

    The three colour planes live stacked in one (3H+2) x W array, so each uint8 <-> float32
    conversion is one OpenCV call over all of them: `cv2.normalize(NORM_INF)`, the one Python
    entry to `Mat::convertTo(scale)` that writes into a given array. Its scale is alpha / max|src|,
    and an extra row holds a sentinel that is that maximum (255 before the model, 2**60 after),
    so the scale is exactly 1/255 or 255 and the result is bit for bit a plain conversion's. A row
    of 1.0 after the sentinel must come out as 255; when inf or NaN in the output spoil the
    maximum it does not, and the frame takes the clamp-then-convert path instead.
    """

    dtype, channels, content = "tensor(float)", 3, "RGB"

    def __init__(self, height: int, width: int, size_multiple: int = 1, strength: float = 1.0, block: int = 1) -> None:
        super().__init__(height, width, size_multiple, strength)
        hp, wp = self._hp, self._wp
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


class Luma8(Form):
    """BGR or I420 frames <-> uint8 luma in and luma residual + 128 out, packed in blocks of
    `block` x `block` pixels when the model declares vcam.luma8_block.

    Both ends stay uint8: the residual r is added as round(x + strength (r - 128)), saturated, in
    one `cv2.addWeighted`. On I420, Y goes through a table from limited range to the full-range
    luma the model was trained on, the residual is added to Y alone (scaled to limited-range
    units) and U and V pass through.
    """

    dtype, channels, content = "tensor(uint8)", 1, "luma"

    def __init__(self, height: int, width: int, size_multiple: int = 1, strength: float = 1.0, block: int = 1) -> None:
        super().__init__(height, width, size_multiple, strength)
        hp, wp, b = self._hp, self._wp, block
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
        # pixels much faster than row-strided ones.
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
            self._pack(y, Y_TO_LUMA)
        else:
            cv2.LUT(y, Y_TO_LUMA, dst=self._luma)
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


FORMS: dict[str, type[Form]] = {"rgb": RgbFloat, "luma8": Luma8}
"""The forms by their `vcam.io` metadata value ('rgb' when a model declares none)."""
