"""The e2e scenarios. Runs INSIDE the QEMU guest (init.sh starts it), as root, against the real
v4l2loopback driver; never collected by pytest (no test_ prefix).

usage: python tests/e2e/guest.py SHARE     SHARE = the writable 9p share (/e2e) with the model,
                                           the reference frames and v4l2loopback.ko from the host

Each scenario drives the real CLI (`vcam start`, `vcam doctor`) as a user would. Its verdict is
written to SHARE/results.json as soon as it is known (report.py prints them on the host), so a
guest that hangs later still reports what finished. Exit code 0 only if every scenario passed.

  no-device    (c) module loaded with only a "FakeWebcam" device: `vcam start` prints the one-line
               fix (with `modprobe v4l2loopback`), exits 2, no traceback.
  doctor       (d) `vcam doctor` finds the SharpCam device and reads its exclusive_caps right.
  publish      (a) `vcam start --source <FakeWebcam> --frames N` with the default sink finds the
               SharpCam device by its label and publishes the sharpened pattern (details below).
  sigterm-restart (b) SIGTERM while a reader is attached: vcam releases the device within 1 s
               and exits (bounded at 5 s: interpreter shutdown is slow emulated); a second
               `vcam start` right after publishes to the still-attached reader.
  readers      (f) ffmpeg's v4l2 input and GStreamer's v4l2src read SharpCam while vcam writes:
               the size and pixel format it announces, and frames that are the sharpened pattern.
  hot-plug     (g) the fake webcam's writer stops and comes back while a reader stays attached to
               SharpCam: the reader keeps getting frames (stand-ins), `vcam doctor` calls the
               unfed fake webcam unfed, and then the reader gets sharpened frames that move (not
               one stale frame repeated).
  browser      (h) headless Chromium (what Google Meet runs in) lists the camera labelled SharpCam
               and draws its frames, which are the sharpened pattern.
  on-demand    (e) `vcam start --on-demand` with no reader releases the fake webcam; a reader
               that starts streaming gets sharpened frames; an app that only queries the device
               (v4l2-ctl) does not wake it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import chromium
import cv2
import numpy as np
import pattern

SHARE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/e2e")
VCAM = str(Path(sys.executable).parent / "vcam")  # the venv's console script
MODEL = str(SHARE / "sharpen.onnx")
DRIVER_VERSION = (SHARE / "driver-version").read_text().strip()  # the module's, as modinfo reads it
SHARPCAM_NR, FAKECAM_NR = 10, 20
SHARPCAM, FAKECAM = f"/dev/video{SHARPCAM_NR}", f"/dev/video{FAKECAM_NR}"
SIZE = ["--width", str(pattern.WIDTH), "--height", str(pattern.HEIGHT)]

# Frame comparisons are mean absolute differences in 8-bit levels over all pixels and channels.
# Frames reach the reader through two YUV 4:2:0 round trips (fake webcam -> vcam, vcam ->
# reader). The host simulates both with OpenCV's BT.601 conversions, as vcam itself converts,
# but the fake webcam writes through pyvirtualcam's libyuv, which rounds differently: measured
# here, that trip differs from the simulation by 0.8 levels on average (up to 4 on single
# pixels), and the sharpen model (a 3x3 Laplacian, centre weight 5) amplifies such pixel-level
# differences about five-fold, so a correct sharpened frame lands 2-3 levels from the host's
# reference. The tolerance is twice
# that; the alternatives it must tell apart are much farther: the unsharpened pattern is ~26
# levels from the sharpened one, and another phase of the pattern ~55.
MATCH_TOLERANCE = 6.0
DISTINCT = 2 * MATCH_TOLERANCE  # the wrong candidate must be at least this far
MIN_EDGE_GAIN = 1.5  # the sharpen model multiplies the pattern's edge energy by ~5

OPEN_TIMEOUT = 120  # s for a reader to see the first frame (vcam's imports are slow emulated)
RUN_TIMEOUT = 120  # s for a `vcam` command to finish on its own
# After SIGTERM, vcam must stop and release camera and device within 1 s, as the README
# promises. What is left after that is the interpreter's own shutdown, which takes 30-40 ms on
# the host but 0.5-2 s under emulation (everything runs 10-40x slower here), so the process
# exit gets a bound that only catches a real hang.
RELEASE_LIMIT = 1.0
EXIT_LIMIT = 5.0


class Failed(Exception):
    """A scenario's check failed; the message says which and what was seen."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


T0 = time.monotonic()


def say(message: str) -> None:
    print(f"e2e [{time.monotonic() - T0:6.1f}s] {message}", flush=True)


# --- results ----------------------------------------------------------------------------------


class Results:
    """results.json in the share, rewritten after every scenario."""

    def __init__(self, names: list[str]) -> None:
        self.data = {"scenarios": names, "results": {}}
        self._write()

    def record(self, name: str, ok: bool, detail: str, seconds: float) -> None:
        self.data["results"][name] = {"ok": ok, "detail": detail, "seconds": round(seconds, 1)}
        say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        self._write()

    def _write(self) -> None:
        tmp = SHARE / "results.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(SHARE / "results.json")

    @property
    def failed(self) -> list[str]:
        """The scenarios that failed or never finished."""
        results = self.data["results"]
        return [name for name in self.data["scenarios"] if not (name in results and results[name]["ok"])]


# --- kernel module, processes, readers -------------------------------------------------------


def load_loopback(devices: list[tuple[int, str, bool]]) -> None:
    """(Re)load v4l2loopback with one device per (number, card label, exclusive_caps)."""
    if Path("/sys/module/v4l2loopback").exists():
        subprocess.run(["busybox", "rmmod", "v4l2loopback"], check=True)
    params = [
        f"devices={len(devices)}",
        "video_nr=" + ",".join(str(nr) for nr, _, _ in devices),
        "card_label=" + ",".join(label for _, label, _ in devices),
        "exclusive_caps=" + ",".join("1" if ex else "0" for _, _, ex in devices),
    ]
    subprocess.run(["busybox", "insmod", str(SHARE / "v4l2loopback.ko"), *params], check=True)
    deadline = time.monotonic() + 10
    while not all(Path(f"/dev/video{nr}").exists() for nr, _, _ in devices):
        check(time.monotonic() < deadline, "device nodes did not appear after insmod")
        time.sleep(0.1)
    say(f"v4l2loopback {DRIVER_VERSION} loaded: {' '.join(params)}")


class Process:
    """A background process whose output goes to a log file (shown when a check fails)."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.log = Path("/tmp") / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        say(f"started {name}: {' '.join(args)}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, needle: str, timeout: float, count: int = 1) -> None:
        """Until the output holds `needle` `count` times."""
        deadline = time.monotonic() + timeout
        while self.output().count(needle) < count:
            check(self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            check(time.monotonic() < deadline, f"{self.name}: no '{needle}' within {timeout}s")
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name} still running after {timeout}s: {self.tail()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 6) -> str:
        return " | ".join(self.output().strip().splitlines()[-lines:])


def vcam_start(name: str, *options: str) -> Process:
    return Process(
        name,
        [
            VCAM,
            "start",
            "--source",
            FAKECAM,
            "--model",
            MODEL,
            *SIZE,
            "--fps",
            str(pattern.FPS),
            "--ema",
            "0",
            *options,
        ],
    )


def open_reader(writer: Process, timeout: float = OPEN_TIMEOUT) -> tuple[cv2.VideoCapture, np.ndarray]:
    """A capture of SharpCam as an app opens it (OpenCV by index with CAP_V4L2: OpenCV 5 cannot
    open a V4L2 path) and its first frame. With exclusive_caps=1 the device is a capture device
    only once a writer has started, so this polls."""
    deadline = time.monotonic() + timeout
    while True:
        capture = cv2.VideoCapture(SHARPCAM_NR, cv2.CAP_V4L2)
        if capture.isOpened():
            ok, frame = capture.read()
            if ok:
                return capture, frame
        capture.release()
        check(writer.proc.poll() is None, f"{writer.name} exited with {writer.proc.returncode}: {writer.tail()}")
        check(time.monotonic() < deadline, f"no frame from {SHARPCAM} within {timeout}s")
        time.sleep(0.5)


def read_frame(capture: cv2.VideoCapture) -> np.ndarray:
    ok, frame = capture.read()
    check(ok, f"reading {SHARPCAM} failed")
    return frame


def announces_output(device: str) -> bool:
    """Whether `device` offers itself as a video output now (VIDIOC_QUERYCAP's device caps).
    With exclusive_caps=1 it does not while a writer is active, and does again once the writer
    has released it, so this tells when a new writer can take over."""
    import fcntl

    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = bytearray(104)  # struct v4l2_capability
        fcntl.ioctl(fd, 0x80685600, info)  # VIDIOC_QUERYCAP
    finally:
        os.close(fd)
    capabilities, device_caps = struct.unpack_from("<II", info, 84)
    caps = device_caps if capabilities & 0x80000000 else capabilities  # V4L2_CAP_DEVICE_CAPS
    return bool(caps & 0x2)  # V4L2_CAP_VIDEO_OUTPUT


def v4l2_ctl(*args: str) -> str:
    result = subprocess.run(["v4l2-ctl", *args], capture_output=True, text=True, timeout=30)
    return result.stdout


# --- frame checks -----------------------------------------------------------------------------

REFERENCE = np.load(SHARE / "reference.npz")
INPUTS = REFERENCE["inputs"].astype(np.int16)  # pattern as vcam reads it
EXPECTED = REFERENCE["expected"].astype(np.int16)  # model output as a reader must see it


def nearest(frame: np.ndarray, candidates: np.ndarray) -> tuple[int, float]:
    """(phase, mean absolute difference) of the candidate closest to `frame`."""
    diffs = np.abs(candidates - frame.astype(np.int16)[None]).mean(axis=(1, 2, 3))
    phase = int(diffs.argmin())
    return phase, float(diffs[phase])


def edge_energy(frame: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of the grey image: how much fine detail it has."""
    g = frame.astype(np.float32).mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


def check_sharpened(frame: np.ndarray) -> str:
    """The frame is the model's output on some phase of the pattern (and not the pattern)."""
    check(
        frame.shape == (pattern.HEIGHT, pattern.WIDTH, 3),
        f"frame shape {frame.shape}, expected {(pattern.HEIGHT, pattern.WIDTH, 3)}",
    )
    phase, diff = nearest(frame, EXPECTED)
    _, diff_raw = nearest(frame, INPUTS)
    gain = edge_energy(frame) / edge_energy(INPUTS[phase].astype(np.uint8))
    summary = (
        f"phase {phase}: {diff:.2f} levels from the model output, {diff_raw:.1f} from the "
        f"unsharpened pattern, edge energy x{gain:.2f}"
    )
    check(diff <= MATCH_TOLERANCE, f"frame does not match the model output: {summary}")
    check(diff_raw >= DISTINCT, f"frame looks unsharpened: {summary}")
    check(gain >= MIN_EDGE_GAIN, f"edge energy did not rise: {summary}")
    return summary


def check_unsharpened(frame: np.ndarray) -> str:
    """The frame is the pattern itself (a `--strength 0` run)."""
    phase, diff = nearest(frame, INPUTS)
    _, diff_sharp = nearest(frame, EXPECTED)
    summary = f"phase {phase}: {diff:.2f} levels from the pattern, {diff_sharp:.1f} from sharpened"
    check(diff <= MATCH_TOLERANCE and diff_sharp >= DISTINCT, f"frame is not the unsharpened pattern: {summary}")
    return summary


def no_traceback(process_output: str, who: str) -> None:
    check("Traceback" not in process_output, f"{who} printed a traceback: {process_output[-800:]}")


# --- scenarios --------------------------------------------------------------------------------


def scenario_no_device() -> str:
    """(c) No device labelled SharpCam: one line with the fix, exit code 2, no traceback."""
    load_loopback([(FAKECAM_NR, "FakeWebcam", True)])
    result = subprocess.run(
        [VCAM, "start", "--source", str(SHARE / "pattern.avi"), "--model", MODEL, *SIZE, "--frames", "5"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    say(f"vcam start without a SharpCam device: exit {result.returncode}, stderr {result.stderr.strip()!r}")
    lines = result.stderr.strip().splitlines()
    no_traceback(result.stderr + result.stdout, "vcam start")
    check(result.returncode == 2, f"exit code {result.returncode}, expected 2")
    check(len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {result.stderr!r}")
    check(
        lines[0].startswith("error: ") and "modprobe v4l2loopback" in lines[0] and "card_label=SharpCam" in lines[0],
        f"the line does not give the modprobe fix: {lines[0]!r}",
    )
    return f"exit 2, one line: {lines[0][:90]}..."


def scenario_doctor() -> str:
    """(d) `vcam doctor` reports the SharpCam device, its exclusive_caps and the camera."""
    result = subprocess.run(
        [VCAM, "doctor", "--model", MODEL, "--source", FAKECAM], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    report = result.stdout
    say("vcam doctor:\n" + report + result.stderr)
    no_traceback(report + result.stderr, "vcam doctor")
    expected = [
        "✓ v4l2loopback module loaded: yes",
        f"✓ SharpCam device present: {SHARPCAM}",
        "✓ exclusive_caps=1 (Chrome/Meet/Teams list the camera only then): yes",
        f"✓ {SHARPCAM} writable: yes",
        f"✓ camera {FAKECAM} delivers frames: {pattern.WIDTH}x{pattern.HEIGHT}",
    ]
    lines = report.splitlines()
    for line in expected:
        check(any(got.startswith(line) for got in lines), f"doctor did not report {line!r}")
    check(result.returncode == 0, f"doctor exit code {result.returncode}, expected 0")
    return f"exit 0; device {SHARPCAM}, exclusive_caps yes, camera {pattern.WIDTH}x{pattern.HEIGHT}"


def scenario_publish() -> str:
    """(a) The default sink finds SharpCam by its label and publishes the sharpened pattern."""
    listing = v4l2_ctl("--list-devices")
    check(
        re.search(rf"^SharpCam \(.*\):\s*\n\s*{SHARPCAM}\s*$", listing, re.M) is not None,
        f"v4l2-ctl --list-devices does not list {SHARPCAM} as SharpCam: {listing!r}",
    )
    before = cv2.VideoCapture(SHARPCAM_NR, cv2.CAP_V4L2)
    readable = before.isOpened() and before.read()[0]
    before.release()
    check(not readable, "SharpCam delivered frames before any writer (exclusive_caps=1 lost?)")

    frames = 100
    vcam = vcam_start("vcam-publish", "--frames", str(frames))
    try:
        capture, first = open_reader(vcam)
        fmt = v4l2_ctl("-d", SHARPCAM, "--info", "--get-fmt-video")
        check(re.search(r"Card type\s*:\s*SharpCam\s*$", fmt, re.M) is not None, f"card type is not SharpCam: {fmt!r}")
        check(
            re.search(rf"Width/Height\s*:\s*{pattern.WIDTH}/{pattern.HEIGHT}", fmt) is not None,
            f"device format is not {pattern.WIDTH}x{pattern.HEIGHT}: {fmt!r}",
        )
        size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        check(size == (pattern.WIDTH, pattern.HEIGHT), f"OpenCV reports size {size}")
        summaries = [check_sharpened(f) for f in [first] + [read_frame(capture) for _ in range(4)]]
        capture.release()
        code = vcam.wait(RUN_TIMEOUT)
        no_traceback(vcam.output(), "vcam start")
        check(code == 0, f"vcam exited with {code}: {vcam.tail()}")
        check(f"stopped after {frames} frames" in vcam.output(), f"no stop line: {vcam.tail()}")
    finally:
        vcam.stop()
    say("published frames: " + "; ".join(summaries))
    return (
        f"SharpCam {pattern.WIDTH}x{pattern.HEIGHT} found by label, 5/5 frames sharpened "
        f"({summaries[-1]}), exit 0 after {frames} frames"
    )


def scenario_sigterm_restart() -> str:
    """(b) SIGTERM with a reader attached stops vcam within 1 s; a restart publishes at once."""
    first = vcam_start("vcam-sigterm")
    second = None
    try:
        capture, _ = open_reader(first)
        check_sharpened(read_frame(capture))  # the reader is attached and streaming
        check(not announces_output(SHARPCAM), "SharpCam announces output while vcam writes")
        sent = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        released = exited = None
        while exited is None or released is None:
            now = time.monotonic() - sent
            check(now < 30, f"vcam still running 30s after SIGTERM: {first.tail()}")
            if released is None and announces_output(SHARPCAM):
                released = now
            if exited is None and first.proc.poll() is not None:
                exited = now
            time.sleep(0.01)
        code = first.proc.returncode
        say(f"after SIGTERM: device released in {released:.2f}s, process exited in {exited:.2f}s with code {code}")
        no_traceback(first.output(), "vcam start")
        check(code == 0, f"exit code {code} after SIGTERM: {first.tail()}")
        check(released <= RELEASE_LIMIT, f"vcam took {released:.2f}s to release SharpCam")
        check(exited <= EXIT_LIMIT, f"vcam took {exited:.2f}s to exit after SIGTERM")

        # Right away, while the reader still holds the device (it reads again only once the
        # second vcam has opened it). --strength 0 publishes the unsharpened camera picture, so
        # its frames cannot be left-overs of the first run.
        second = vcam_start("vcam-restart", "--strength", "0", "--frames", "60")
        second.wait_for_line("-> virtualcam", OPEN_TIMEOUT)  # logged once the sink is open
        deadline = time.monotonic() + OPEN_TIMEOUT
        reopened = False
        while True:
            check(
                second.proc.poll() in (None, 0), f"second vcam start failed ({second.proc.returncode}): {second.tail()}"
            )
            check(time.monotonic() < deadline, f"no frame of the second vcam within {OPEN_TIMEOUT}s: {second.tail()}")
            ok, frame = capture.read()
            if not ok:  # the reader's stream ended with the first writer: reopen
                capture.release()
                capture, frame = open_reader(second, deadline - time.monotonic())
                reopened = True
            try:
                summary = check_unsharpened(frame)
                break
            except Failed:
                continue  # a frame the first run left in the device
        capture.release()
        code = second.wait(RUN_TIMEOUT)
        no_traceback(second.output(), "second vcam start")
        check(code == 0, f"second vcam exited with {code}: {second.tail()}")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    reader = "the reader, reopened," if reopened else "the still-attached reader"
    return (
        f"released SharpCam {released:.2f}s and exited 0 {exited:.2f}s after SIGTERM; a "
        f"restart published to {reader} ({summary})"
    )


def raw_frames(path: Path) -> list[np.ndarray]:
    """BGR frames of the pattern's size from a file of raw bgr24 frames."""
    data = np.frombuffer(path.read_bytes(), np.uint8)
    size = pattern.HEIGHT * pattern.WIDTH * 3
    check(data.size >= size and data.size % size == 0, f"{path}: {data.size} bytes, not whole frames")
    return list(data.reshape(-1, pattern.HEIGHT, pattern.WIDTH, 3))


def scenario_readers() -> str:
    """(f) ffmpeg and GStreamer read what SharpCam announces: size, format, sharpened frames."""
    vcam = vcam_start("vcam-readers")
    seen = []
    try:
        capture, _ = open_reader(vcam)  # the writer is streaming once a reader gets frames
        capture.release()
        out = Path("/tmp/ffmpeg.bgr")
        done = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "info", "-f", "v4l2", "-i", SHARPCAM, "-frames:v", "5",
             "-f", "rawvideo", "-pix_fmt", "bgr24", "-y", str(out)],
            capture_output=True, text=True, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        check(done.returncode == 0, f"ffmpeg failed ({done.returncode}): {done.stderr[-600:]}")
        stream = next((line for line in done.stderr.splitlines() if "Stream #0:0" in line and "Video" in line), "")
        check(
            "yuv420p" in stream and f"{pattern.WIDTH}x{pattern.HEIGHT}" in stream,
            f"ffmpeg's input is not yuv420p {pattern.WIDTH}x{pattern.HEIGHT}: {stream!r}",
        )
        frames = raw_frames(out)
        check(len(frames) == 5, f"ffmpeg wrote {len(frames)} frames, expected 5")
        seen.append(f"ffmpeg: {stream.split('Video: ', 1)[-1][:60]}; {check_sharpened(frames[-1])}")

        out = Path("/tmp/gst.bgr")
        caps = f"video/x-raw,format=I420,width={pattern.WIDTH},height={pattern.HEIGHT}"
        done = subprocess.run(
            ["gst-launch-1.0", "-v", "v4l2src", f"device={SHARPCAM}", "num-buffers=5", "!", caps, "!",
             "videoconvert", "!", "video/x-raw,format=BGR", "!", "filesink", f"location={out}"],
            capture_output=True, text=True, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        check(done.returncode == 0, f"gst-launch failed ({done.returncode}): {(done.stdout + done.stderr)[-600:]}")
        negotiated = next((line for line in done.stdout.splitlines() if "v4l2src0.GstPad:src: caps" in line), "")
        check("format=(string)I420" in negotiated, f"v4l2src did not negotiate I420: {negotiated!r}")
        frames = raw_frames(out)
        check(len(frames) == 5, f"GStreamer wrote {len(frames)} frames, expected 5")
        seen.append(f"GStreamer v4l2src: I420 {pattern.WIDTH}x{pattern.HEIGHT}; {check_sharpened(frames[-1])}")
        vcam.proc.send_signal(signal.SIGTERM)
        check(vcam.wait(RUN_TIMEOUT) == 0, f"vcam exited badly: {vcam.tail()}")
    finally:
        vcam.stop()
    say("readers: " + " | ".join(seen))
    return " | ".join(seen)


BROWSER_TIMEOUT = 600  # s of guest time for Chromium to start, open the camera and answer


def scenario_browser() -> str:
    """(h) Chromium lists SharpCam by its label and gets the sharpened frames."""
    page = Path("/tmp/sharpcam-page.html")
    page.write_text(chromium.PAGE)
    vcam = vcam_start("vcam-browser")
    try:
        capture, _ = open_reader(vcam)  # SharpCam streams (exclusive_caps=1 lists it once written to)
        capture.release()
        started = time.monotonic()
        try:
            body = chromium.in_chromium(f"file://{page}", "sharpcamFrame()", BROWSER_TIMEOUT)
        except chromium.BrowserError as exc:
            raise Failed(str(exc)) from None
        took = time.monotonic() - started
        match = re.search(r"LABEL (.*?) PIXELS (\S+) END", body)
        check(match is not None, f"the page did not report a SharpCam frame: {body[:300]!r}")
        assert match is not None
        rgb = np.frombuffer(base64.b64decode(match.group(2)), np.uint8).reshape(pattern.HEIGHT, pattern.WIDTH, 3)
        summary = check_sharpened(np.ascontiguousarray(rgb[..., ::-1]))
        vcam.proc.send_signal(signal.SIGTERM)
        check(vcam.wait(RUN_TIMEOUT) == 0, f"vcam exited badly: {vcam.tail()}")
    finally:
        vcam.stop()
    return f"Chromium listed {match.group(1)!r} and drew its frame ({summary}); {took:.0f}s in the emulated guest"


def start_fakecam() -> Process:
    fakecam = Process("fakecam", [sys.executable, str(Path(__file__).with_name("fakecam.py")), FAKECAM])
    fakecam.wait_for_line("fakecam: streaming", OPEN_TIMEOUT)
    say(fakecam.tail(1))
    return fakecam


def stop_fakecam(fakecam: Process) -> None:
    fakecam.proc.send_signal(signal.SIGTERM)
    try:
        fakecam.proc.wait(10)
    except subprocess.TimeoutExpired:
        fakecam.stop()


FAKECAMS: list[Process] = []  # the running fake webcam, replaced by the hot-plug scenario


def scenario_hot_plug() -> str:
    """(g) The camera goes away and comes back; the reader attached to SharpCam never starves."""
    vcam = vcam_start("vcam-hot-plug")
    capture = None
    try:
        capture, frame = open_reader(vcam)
        check_sharpened(frame)
        stop_fakecam(FAKECAMS.pop())
        gone = time.monotonic()
        during = 0
        while time.monotonic() - gone < 6.0:  # the camera's silence is noticed within 2 s
            read_frame(capture)
            during += 1
        check("reconnects" in vcam.output(), f"vcam did not notice the camera went away: {vcam.tail()}")
        check(during >= 20, f"the reader got only {during} frames in the 6 s without a camera")
        # Nobody feeds the fake webcam now: opening it would fix its format (the bug this
        # scenario caught), so doctor must say so without opening it.
        doctor = subprocess.run(
            [VCAM, "doctor", "--model", MODEL, "--source", FAKECAM], capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        unfed = next((line for line in doctor.stdout.splitlines() if f"camera {FAKECAM}" in line), "")
        check(
            unfed.startswith("✗") and "no app is feeding" in unfed and doctor.returncode != 0,
            f"doctor on the unfed fake webcam (exit {doctor.returncode}): {unfed or doctor.stdout[-300:]!r}",
        )
        FAKECAMS.append(start_fakecam())
        back = time.monotonic()
        # Sharpened frames of two phases: the picture moves again (a reader opened on a stale
        # stream hands out one old frame for ever, which a single matching frame would not show).
        phases: set[int] = set()
        seen = "nothing"
        while len(phases) < 2:
            try:
                frame = read_frame(capture)
                summary = check_sharpened(frame)
                if not phases:
                    resumed = time.monotonic() - back
                phases.add(nearest(frame, EXPECTED)[0])
            except Failed as exc:
                seen = str(exc)
            check(
                time.monotonic() - back < OPEN_TIMEOUT,
                f"no moving sharpened picture after the camera came back (phases {sorted(phases)}; last "
                f"frame: {seen}): {vcam.tail()}",
            )
        capture.release()
        capture = None
        vcam.proc.send_signal(signal.SIGTERM)
        check(vcam.wait(RUN_TIMEOUT) == 0, f"vcam exited badly: {vcam.tail()}")
        no_traceback(vcam.output(), "vcam start")
        # vcam says in one line that the camera went away; OpenCV's own WARN lines (a select()
        # timeout per second of silence) would repeat it in another format.
        opencv = [line for line in vcam.output().splitlines() if "[ WARN" in line]
        check(not opencv, f"OpenCV's warnings reached vcam's log ({len(opencv)}): {opencv[:2]}")
    finally:
        if capture is not None:
            capture.release()
        vcam.stop()
    waited = next((line.split("INFO ", 1)[-1] for line in vcam.output().splitlines() if "not back yet" in line), "")
    return (
        f"{during} frames reached the reader in the 6 s without a camera ({waited}; doctor: "
        f"{unfed.split(': ', 1)[-1][:50]}...); sharpened frames "
        f"again {resumed:.2f}s after the camera came back, moving (phases {sorted(phases)}; emulated) ({summary})"
    )


def holds(pid: int, device: str) -> bool:
    """Whether process `pid` has `device` open."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == device for fd in fds.iterdir())


def scenario_on_demand() -> str:
    """(e) No reader: the camera is released; a streaming reader wakes it; a query does not."""
    vcam = vcam_start("vcam-on-demand", "--on-demand")
    capture = None
    try:
        vcam.wait_for_line("camera released", OPEN_TIMEOUT)
        check(not holds(vcam.proc.pid, FAKECAM), f"vcam still holds the fake webcam {FAKECAM} while idle")
        # What an app listing cameras asks: capabilities, controls, formats, sizes, rates. On
        # 0.12 vcam wakes the camera for an opener that maps the device (a streaming reader) or
        # holds it for 1 s (vcam/demand.py; 0.13+ count streaming readers by driver events).
        took = []
        for _ in range(3):
            asked = time.monotonic()
            v4l2_ctl("-d", SHARPCAM, "--all", "--list-formats-ext")
            took.append(time.monotonic() - asked)
        time.sleep(1.5)
        check("an app is watching" not in vcam.output(), f"a device query woke the camera: {vcam.tail()}")
        started = time.monotonic()
        capture, frame = open_reader(vcam)
        while True:  # idle pictures first, then the camera's frames, sharpened
            try:
                summary = check_sharpened(frame)
                break
            except Failed:
                check(time.monotonic() - started < OPEN_TIMEOUT, f"no sharpened frame on demand: {vcam.tail()}")
                frame = read_frame(capture)
        woke = time.monotonic() - started
        check(holds(vcam.proc.pid, FAKECAM), "vcam does not hold the fake webcam while a reader streams")
        # 0.13+ queue a reader-usage event; 0.12 has none, and readers are found through /proc
        version = tuple(int(v) for v in DRIVER_VERSION.split(".")[:2])
        # 0.12: the reader (OpenCV, streaming) is found by its mapping of the device, not after
        # the 1 s that a reader mapping nothing has to hold it
        counted = "driver events" if version >= (0, 13) else "open files; it maps the device"
        check(f"(counted by {counted})" in vcam.output(), f"readers not counted by {counted}: {vcam.tail()}")
        capture.release()
        capture = None
        vcam.wait_for_line("camera released", OPEN_TIMEOUT, count=2)  # the reader left: released again
        vcam.proc.send_signal(signal.SIGTERM)
        code = vcam.wait(RUN_TIMEOUT)
        no_traceback(vcam.output(), "vcam start --on-demand")
        check(code == 0, f"vcam exited with {code}: {vcam.tail()}")
    finally:
        if capture is not None:
            capture.release()
        vcam.stop()
    say(f"on demand: reader open -> sharpened frame {woke:.2f}s ({summary})")
    return (
        f"idle without a reader (fake webcam released), v4l2-ctl queries (up to {max(took):.2f}s each, "
        f"process start included) did not wake it, a reader got "
        f"sharpened frames {woke:.2f}s after opening (emulated guest; counted by {counted}), released again "
        "after it left"
    )


def run(results: Results, name: str, scenario: Callable[[], str]) -> None:
    say(f"--- {name}")
    started = time.monotonic()
    try:
        results.record(name, True, scenario(), time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 — any failure, expected or not, is this one's FAIL
        detail = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
        results.record(name, False, detail, time.monotonic() - started)


def main() -> int:
    names = ["no-device", "doctor", "publish", "sigterm-restart", "readers", "browser", "on-demand", "hot-plug"]
    results = Results(names)
    say(f"python {sys.version.split()[0]}, OpenCV {cv2.__version__}, kernel {os.uname().release}")
    run(results, "no-device", scenario_no_device)

    # The rest: SharpCam (exclusive_caps=1, what the README tells users) plus the fake webcam
    # (exclusive_caps=0, so doctor must read the flag of the right device), fed by fakecam.py.
    # The fake webcam is created first although its number is higher (video_nr=20,10): the
    # module's per-device flags are in creation order, not in device-number order.
    load_loopback([(FAKECAM_NR, "FakeWebcam", False), (SHARPCAM_NR, "SharpCam", True)])
    try:
        FAKECAMS.append(start_fakecam())
        run(results, "doctor", scenario_doctor)
        run(results, "publish", scenario_publish)
        run(results, "sigterm-restart", scenario_sigterm_restart)
        run(results, "readers", scenario_readers)
        run(results, "browser", scenario_browser)
        run(results, "on-demand", scenario_on_demand)
        run(results, "hot-plug", scenario_hot_plug)
    except Failed as exc:
        say(f"the fake webcam did not start: {exc}")
    finally:
        for fakecam in FAKECAMS:
            stop_fakecam(fakecam)
    say(f"FAILED: {', '.join(results.failed)}" if results.failed else "all scenarios PASSED")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
