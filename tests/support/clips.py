"""The flat-grey clips the camera and pipeline tests write: frame i is grey level i * STEP."""

import numpy as np

STEP = 30  # grey level between consecutive clip frames: survives MJPG, identifies each frame


def frame_index(frame: np.ndarray) -> int:
    """Which clip frame this is (clip frame i is a flat grey of i * STEP)."""
    return int(round(float(frame.mean()) / STEP))
