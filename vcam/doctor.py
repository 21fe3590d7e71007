"""`vcam doctor`: the checks behind "the app does not see the camera", each with its fix.

Every check runs even when an earlier one failed, so the user gets the whole list of fixes in one
go instead of one per attempt.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import pyvirtualcam

from vcam import contract, tiers
from vcam.camera import open_source
from vcam.errors import VcamError
from vcam.options import DEFAULTS
from vcam.sharpener import OnnxSharpener
from vcam.v4l2loopback import LABEL, MODPROBE, PERMANENT, exclusive_caps, find_device


@dataclass
class Check:
    """`detail` is what was found when ok, else the fix. Non-essential failures only warn."""

    name: str
    ok: bool
    detail: str
    essential: bool = True


def run_checks(model: str | Path | None = None, source: str = "0", root: Path = Path("/")) -> list[Check]:
    """All checks for this OS, in the order a user would fix them."""
    checks = [Check("OS", True, f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}")]
    checks += _linux_checks(root) if platform.system() == "Linux" else [_obs_check()]
    checks += _model_checks(model) + [_source_check(source)]
    return checks


def _linux_checks(root: Path) -> list[Check]:
    loaded = (root / "sys/module/v4l2loopback").is_dir()
    checks = [
        Check(
            "v4l2loopback module loaded",
            loaded,
            "yes" if loaded else f"install and load it: sudo apt install v4l2loopback-dkms && {MODPROBE}",
        )
    ]
    device = find_device(LABEL, root)
    checks.append(
        Check(f"{LABEL} device present", device is not None, device or f"create it: {MODPROBE} ({PERMANENT})")
    )
    if device is None:
        return checks
    exclusive = exclusive_caps(device, root)
    checks.append(
        Check(
            "exclusive_caps=1 (Chrome/Meet/Teams list the camera only then)",
            bool(exclusive),
            "yes" if exclusive else f"reload the module: sudo modprobe -r v4l2loopback && {MODPROBE}",
            essential=exclusive is not None,
        )
    )
    writable = os.access(device, os.W_OK)
    checks.append(
        Check(
            f"{device} writable",
            writable,
            "yes" if writable else "run: sudo usermod -aG video $USER, then log out and in again",
        )
    )
    return checks


def _obs_check() -> Check:
    try:
        with pyvirtualcam.Camera(64, 48, 30, backend="obs") as cam:
            return Check("virtual camera", True, f"{cam.device} (apps list it under that name)")
    except Exception as exc:  # noqa: BLE001 — any failure means the OBS driver is not usable
        return Check(
            "virtual camera",
            False,
            f"OBS Virtual Camera unusable ({exc}) — install OBS Studio and start its virtual camera once",
        )


def _model_checks(model: str | Path | None) -> list[Check]:
    """With no model, also the tier `vcam start` would pick at its default size and rate."""
    checks = []
    try:
        if model is None:
            d = DEFAULTS
            choice = tiers.choose(d.width, d.height, d.fps)
            checks.append(
                Check(
                    f"model tier for {d.width}x{d.height} at {d.fps:g} fps",
                    True,
                    f"{choice.tier} ({choice.path.name}): {choice.reason}",
                )
            )
            model = choice.path
        sharpener = OnnxSharpener(model)
    except VcamError as exc:
        return checks + [Check("model loads and follows the contract", False, str(exc))]
    meta = sharpener.metadata
    return checks + [
        Check(
            "model loads and follows the contract",
            True,
            f"{sharpener.path.name}: {meta.get(contract.NAME, '?')} "
            f"v{meta.get(contract.VERSION, '?')}, {sharpener.contract.form} form, "
            f"size multiple {sharpener.size_multiple}, "
            f"providers {', '.join(sharpener.providers)}",
        )
    ]


def _source_check(source: str) -> Check:
    name = f"camera {source} delivers frames" if not os.path.isfile(source) else f"{source} delivers frames"
    try:
        with open_source(source, None, None) as camera:
            width, height = camera.size
            return Check(name, True, f"{width}x{height} at {camera.fps:.0f} fps")
    except VcamError as exc:
        return Check(name, False, str(exc))
