"""The pipeline's I420 frames: conversion, plane views and their checks."""

import cv2
import numpy as np
import pytest

from vcam.errors import VcamError
from vcam.frames import on_luma, planes, size, to_bgr, to_i420


def smooth(height: int, width: int) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 3.0)


def test_an_odd_sized_frame_loses_its_last_row_and_column() -> None:
    frame = smooth(481, 641)
    yuv = to_i420(frame)
    assert yuv.shape == (720, 640) and size(yuv) == (640, 480)
    assert np.array_equal(yuv, cv2.cvtColor(np.ascontiguousarray(frame[:480, :640]), cv2.COLOR_BGR2YUV_I420))


def test_the_buffer_is_reused_only_when_it_fits() -> None:
    frame = smooth(48, 64)
    buffer = to_i420(frame)
    assert to_i420(frame[::-1], buffer) is buffer
    assert to_i420(smooth(60, 80), buffer).shape == (90, 80)


def test_y_is_limited_range_luma_and_the_round_trip_keeps_the_picture() -> None:
    frame = smooth(64, 96)
    yuv = to_i420(frame)
    y, u, v = planes(yuv)
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(float)
    assert np.abs(y - (16 + grey * 219 / 255)).max() <= 1
    assert u.shape == v.shape == (32, 48)
    assert np.abs(to_bgr(yuv).astype(int) - frame).mean() < 2


@pytest.mark.parametrize("height", [64, 66])  # H/4 rows of U: whole, and half a row
def test_planes_are_writable_views_of_the_frame(height: int) -> None:
    yuv = to_i420(smooth(height, 96))
    y, u, v = planes(yuv)
    v[:] = 7
    assert (yuv.reshape(-1)[-v.size :] == 7).all()
    assert np.shares_memory(u, yuv) and y.base is yuv
    assert y.size + u.size + v.size == yuv.size


def test_on_luma_changes_y_and_copies_chroma() -> None:
    yuv = to_i420(smooth(48, 64))
    out = on_luma(cv2.bitwise_not, yuv)
    assert np.array_equal(out[:48], 255 - yuv[:48])
    assert np.array_equal(out[48:], yuv[48:])
    assert on_luma(cv2.bitwise_not, yuv, out) is out


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((48, 64, 3), np.uint8),
        np.zeros((47, 64), np.uint8),
        np.zeros((72, 63), np.uint8),
        np.zeros((72, 64), np.float32),
        np.zeros((1, 64), np.uint8),
    ],
    ids=["bgr", "rows not 3H/2", "odd width", "float", "too small"],
)
def test_what_is_not_an_i420_frame_is_refused(array: np.ndarray) -> None:
    with pytest.raises(VcamError, match="expected an I420 frame"):
        size(array)


def test_what_is_not_a_bgr_frame_is_not_converted() -> None:
    with pytest.raises(VcamError, match="expected an HxWx3 uint8 BGR frame"):
        to_i420(np.zeros((1, 64, 3), np.uint8))
