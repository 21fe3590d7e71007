"""The guest's physical webcam: sends pattern.frame(0), frame(1), ... to a v4l2loopback device
through pyvirtualcam (the same path OBS-style writers use) until SIGTERM.

usage: python fakecam.py /dev/videoN
Prints one line "fakecam: streaming ..." once the first frame is on the device.
"""

from __future__ import annotations

import signal
import sys

import pattern
import pyvirtualcam


def main(device: str) -> None:
    frames = [pattern.frame(k) for k in range(pattern.PHASES)]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with pyvirtualcam.Camera(
        pattern.WIDTH,
        pattern.HEIGHT,
        pattern.FPS,
        device=device,
        fmt=pyvirtualcam.PixelFormat.BGR,
        backend="v4l2loopback",
    ) as cam:
        sent = 0
        while not stopping:
            cam.send(frames[sent % pattern.PHASES])
            sent += 1
            if sent == 1:
                print(
                    f"fakecam: streaming {pattern.WIDTH}x{pattern.HEIGHT} at {pattern.FPS:g} fps"
                    f" to {cam.device} (native format {cam.native_fmt})",
                    flush=True,
                )
            cam.sleep_until_next_frame()
    print(f"fakecam: stopped after {sent} frames", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
