"""The options of `vcam start`, each default written once: the CLI's flags, the config file's keys
and `open_pipeline`'s argument are this one dataclass. An option's name is the same everywhere
(the flag adds `--` and writes `_` as `-`), so library errors name options by that name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from vcam.errors import VcamError


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class StartOptions:
    """What `vcam start` runs; see each field's help (`help_for`)."""

    source: str = _opt("0", "Webcam index (0), device (/dev/video2) or video file.")
    model: str | None = _opt(None, "ONNX model [default: the shipped tier that fits this CPU].")
    tier: str | None = _opt(
        None, "fast, default or hq: a shipped model [default: chosen by a calibration on this CPU]."
    )
    sink: str = _opt("virtualcam", "virtualcam, window, null or FILE.mp4/.avi.")
    device: str | None = _opt(None, "v4l2loopback device [default: the one labelled SharpCam].")
    width: int = _opt(1280, "Requested frame width.")
    height: int = _opt(720, "Requested frame height.")
    fps: float = _opt(30.0, "Requested camera frame rate.")
    strength: float = _opt(1.0, "0..1 blend of camera (0) and model output (1).")
    ema: float = _opt(0.85, "Temporal smoothing 0..1 (static pixels average over ~1/(1-ema) frames), 0 disables.")
    provider: str = _opt("auto", "auto, cpu, cuda or tensorrt.")
    frames: int | None = _opt(None, "Stop after N frames (demos, tests).")
    overwrite: bool = _opt(False, "Let a FILE sink replace an existing file.")
    on_demand: bool = _opt(False, "Release the camera while no app reads the SharpCam device (virtualcam sink).")
    log_level: str = _opt("info", "debug, info, warning or error.")

    @property
    def provider_choice(self) -> str | None:
        """The provider for ONNX Runtime: None picks the best available."""
        return None if self.provider == "auto" else self.provider


DEFAULTS = StartOptions()


def help_for(name: str) -> str:
    """The help text of option `name`."""
    return next(str(f.metadata["help"]) for f in fields(StartOptions) if f.name == name)


PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
LOG_LEVELS = ("debug", "info", "warning", "error")


def check(name: str, value: Any) -> None:
    """Refuse a value no run can use, naming the option; the one rule for each option, used by
    the library, the CLI and the config file alike."""
    if value is None:
        return
    if name in ("strength", "ema") and not 0.0 <= value <= 1.0:
        raise VcamError(f"{name} must be between 0 and 1 (got {value})")
    if name == "fps" and not (math.isfinite(value) and value > 0):
        raise VcamError(f"fps must be a positive number (got {value:g})")
    if name in ("width", "height") and value < 2:
        raise VcamError(f"{name} must be at least 2 (got {value})")
    if name == "frames" and value < 1:
        raise VcamError(f"frames must be at least 1 (got {value})")
    from vcam.tiers import TIERS

    choices = {"provider": PROVIDERS, "log_level": LOG_LEVELS, "tier": tuple(TIERS)}.get(name)
    if choices and str(value).lower() not in choices:
        raise VcamError(f"unknown {name} {value!r} — use {', '.join(choices)}")
