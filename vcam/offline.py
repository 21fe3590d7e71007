"""`vcam sharpen`: files instead of a camera — a video, or one or many images.

A video goes through the live path itself (Pipeline: the same sharpener and temporal stages)
with a file source that hands over every frame once, as fast as the CPU goes, into an H.264 file;
its audio is then copied across unchanged. The output is written beside the target under a
temporary name and renamed at the end, so a killed run never leaves a half file under the name
the user asked for. Images go through the sharpener one by one (a single frame has no history,
so the temporal stage would pass it through).

Without a model or tier, offline work runs the hq tier: nothing has to keep up with a camera.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2

from vcam import tiers
from vcam.camera import IMAGE_SUFFIXES, open_file
from vcam.errors import VcamError
from vcam.options import StartOptions
from vcam.pipeline import Pipeline
from vcam.sharpener import OnnxSharpener
from vcam.sinks import FILE_SINKS, open_sink
from vcam.temporal import TemporalFilter

log = logging.getLogger(__name__)

OFFLINE_TIER = "hq"
CHUNK = 8  # frames between progress reports
Progress = Callable[[int, "int | None"], None]  # (frames done, total or None)


def sharpen_files(inputs: list[Path], out: Path, options: StartOptions, progress: Progress | None = None) -> list[Path]:
    """Sharpen a video (exactly one input) or images into `out` (a file, or a folder for many
    images); returns the files written."""
    if not inputs:
        raise VcamError("nothing to sharpen — name a video or images")
    for path in inputs:
        if not path.is_file():
            raise VcamError(f"{path} not found — name an existing video or image")
    videos = [p for p in inputs if p.suffix.lower() not in IMAGE_SUFFIXES]
    if videos and len(inputs) > 1:
        raise VcamError(f"{videos[0]} is a video: sharpen one video at a time, or only images")
    if not videos:
        return sharpen_images(inputs, out, options, progress)
    return [sharpen_video(inputs[0], out, options, progress)]


def _sharpener(options: StartOptions) -> OnnxSharpener:
    tiers.check_choice(options.model, options.tier)
    model = Path(options.model) if options.model else tiers.tier_path(options.tier or OFFLINE_TIER)
    return OnnxSharpener(model, options.provider_choice, options.strength)


def _check_target(path: Path, inputs: list[Path], overwrite: bool) -> None:
    if any(path.exists() and p.exists() and os.path.samefile(p, path) for p in inputs):
        raise VcamError(f"output {path} is an input: it would be destroyed — name another file")
    if path.exists() and not overwrite:
        raise VcamError(f"{path} exists — allow overwrite to replace it, or name another file")
    if not path.parent.is_dir():
        raise VcamError(f"the folder {path.parent} does not exist — create it or name another output")


@contextlib.contextmanager
def _written_at_the_end(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed to it when the block succeeds."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def sharpen_video(src: Path, dst: Path, options: StartOptions, progress: Progress | None = None) -> Path:
    """Every frame of `src` through the live pipeline into `dst` (.mp4 or .avi), audio copied."""
    if dst.suffix.lower() not in FILE_SINKS:
        raise VcamError(f"output {dst} must end in {' or '.join(FILE_SINKS)} for a video")
    _check_target(dst, [src], options.overwrite)
    sharpener = _sharpener(options)
    source = open_file(src, realtime=False)
    total = source.frame_count
    done = 0
    try:
        with _written_at_the_end(dst) as partial:
            sink = open_sink(str(partial), *source.size, source.fps, overwrite=True)
            with Pipeline(source, sharpener, TemporalFilter(options.ema), sink, status_interval=None) as pipeline:
                while True:
                    n = pipeline.run(max_frames=CHUNK)
                    done += n
                    if progress is not None:
                        progress(done, total)
                    if n < CHUNK:
                        break
            if dst.suffix.lower() == ".mp4":
                _copy_audio(src, partial)
    finally:
        source.close()
    log.info("%s: %d frames -> %s", src, done, dst)
    return dst


def _copy_audio(src: Path, video: Path) -> None:
    """Mux `src`'s audio streams, unchanged, beside `video`'s one video stream (in place)."""
    import av

    with av.open(str(src)) as original:
        audio = [s for s in original.streams if s.type == "audio"]
        if not audio:
            return
        muxed = video.with_name(video.stem + ".audio" + video.suffix)
        try:
            with av.open(str(video)) as picture, av.open(str(muxed), "w", format="mp4") as out:
                pairs = {picture.streams.video[0]: out.add_stream_from_template(picture.streams.video[0])}
                for stream in audio:
                    pairs[stream] = out.add_stream_from_template(stream)
                for container, streams in ((picture, [picture.streams.video[0]]), (original, audio)):
                    for packet in container.demux(*streams):
                        if packet.dts is None:  # the demuxer's end-of-stream marker
                            continue
                        packet.stream = pairs[packet.stream]
                        out.mux(packet)
            os.replace(muxed, video)
        except (av.FFmpegError, ValueError) as exc:
            log.warning("audio of %s not copied (%s): the output has video only", src, exc)
        finally:
            muxed.unlink(missing_ok=True)


def sharpen_images(paths: list[Path], out: Path, options: StartOptions, progress: Progress | None = None) -> list[Path]:
    """Each image through the sharpener, written as `out` (one image named like an image) or
    into the folder `out` under its own name."""
    single = len(paths) == 1 and out.suffix.lower() in IMAGE_SUFFIXES
    if not single:
        if out.exists() and not out.is_dir():
            raise VcamError(f"output {out} is a file: for several images name a folder")
        out.mkdir(parents=True, exist_ok=True)
    targets = [out] if single else [out / p.name for p in paths]
    if len(set(targets)) < len(targets):
        raise VcamError(f"two inputs are both named {next(t.name for t in targets if targets.count(t) > 1)}")
    for target in targets:
        _check_target(target, paths, options.overwrite)
    sharpener = _sharpener(options)
    written = []
    for i, (path, target) in enumerate(zip(paths, targets)):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise VcamError(f"{path} is not an image OpenCV can read — use PNG, JPEG, BMP, WebP or TIFF")
        with _written_at_the_end(target) as partial:
            if not cv2.imwrite(str(partial), sharpener(image)):
                raise VcamError(f"cannot write {target} — check the folder is writable")
        written.append(target)
        if progress is not None:
            progress(i + 1, len(paths))
    return written
