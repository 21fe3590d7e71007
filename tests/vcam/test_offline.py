"""`vcam sharpen`: a video through the live path's stages (every frame, audio copied) and images,
with the refusals that protect the user's files."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from vcam.cli import app
from vcam.errors import VcamError
from vcam.offline import sharpen_files
from vcam.options import StartOptions

runner = CliRunner()


def clip_with_audio(path: Path, frames: int = 12, fps: int = 10, size: tuple[int, int] = (96, 64)) -> Path:
    """An H.264 clip of textured frames with an AAC sine track, written with PyAV."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        for i in range(frames):
            texture = cv2.resize(rng.integers(0, 256, (size[1] // 4, size[0] // 4, 3), np.uint8), size)
            picture = av.VideoFrame.from_ndarray(texture, format="bgr24")
            picture.pts = i
            out.mux(video.encode(picture))
        per_frame = 16000 // fps
        for i in range(frames):
            tone = (0.3 * np.sin(np.arange(i * per_frame, (i + 1) * per_frame) * 0.1)).astype(np.float32)
            sound = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 16000, i * per_frame
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def streams(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.type for s in container.streams]


@pytest.mark.slow
def test_a_video_keeps_every_frame_its_size_and_its_audio_and_equals_the_live_path(
    tmp_path: Path, sharpen_model: Path
) -> None:
    clip = clip_with_audio(tmp_path / "call.mp4")
    offline, live = tmp_path / "offline.mp4", tmp_path / "live.mp4"
    result = runner.invoke(app, ["sharpen", str(clip), "-o", str(offline), "--model", str(sharpen_model)])
    assert result.exit_code == 0, result.output
    assert streams(offline) == ["video", "audio"]
    frames = decoded(offline)
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)
    assert not np.array_equal(frames[3], decoded(clip)[3])  # it did sharpen
    # The live path on the same clip (a paced 10 fps source: nothing dropped) gives the same frames.
    args = ["start", "--source", str(clip), "--model", str(sharpen_model), "--sink", str(live), "--frames", "12"]
    assert runner.invoke(app, [*args, "--width", "96", "--height", "64"]).exit_code == 0
    assert all(np.array_equal(a, b) for a, b in zip(decoded(live), frames, strict=True))


def test_images_one_or_many(tmp_path: Path, sharpen_model: Path) -> None:
    rng = np.random.default_rng(1)
    inputs = []
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (33, 47, 3), np.uint8))
        inputs.append(tmp_path / name)
    options = StartOptions(model=str(sharpen_model))
    [single] = sharpen_files(inputs[:1], tmp_path / "one.png", options)
    assert cv2.imread(str(single)).shape == (33, 47, 3)
    written = sharpen_files(inputs, tmp_path / "out", options)
    assert [p.name for p in written] == ["a.png", "b.jpg"] and all(p.parent == tmp_path / "out" for p in written)
    with pytest.raises(VcamError, match="exists — allow overwrite"):
        sharpen_files(inputs, tmp_path / "out", options)
    assert len(sharpen_files(inputs, tmp_path / "out", StartOptions(model=str(sharpen_model), overwrite=True))) == 2


@pytest.mark.parametrize(
    "make_inputs, out, fragment",
    [
        (lambda d: [d / "missing.mp4"], "o.mp4", "not found"),
        (lambda d: [d / "v.avi", d / "a.png"], "o", "one video at a time"),
        (lambda d: [d / "v.avi"], "o.mkv", "must end in .mp4 or .avi"),
        (lambda d: [d / "v.avi"], "v.avi", "is an input"),
        (lambda d: [d / "junk.png"], "o.png", "not an image OpenCV can read"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(tmp_path: Path, sharpen_model: Path, make_inputs, out, fragment):
    (tmp_path / "junk.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    writer = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (32, 24))
    writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["sharpen", *map(str, make_inputs(tmp_path)), "-o", str(tmp_path / out), "--model", str(sharpen_model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_interrupted_video_leaves_nothing_under_the_target_name(tmp_path: Path, sharpen_model: Path) -> None:
    clip = clip_with_audio(tmp_path / "call.mp4", frames=30)
    target = tmp_path / "out.mp4"

    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sharpen_files([clip], target, StartOptions(model=str(sharpen_model)), interrupt)
    assert [p.name for p in tmp_path.iterdir() if "out" in p.name] == []  # neither the target nor a partial
