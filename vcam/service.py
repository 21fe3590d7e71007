"""SharpCam as a systemd user service: `vcam service install|uninstall|status`.

The unit runs `vcam start` with this very interpreter (so a virtualenv install works), restarts
it when it fails, and stops it with SIGTERM, which `vcam start` turns into a clean stop. Its
options come from the config file (vcam/config.py), so changing them is an edit and a
`systemctl --user restart sharpcam`. Loading v4l2loopback at boot needs root and is not done
here: `install` prints the two lines that do it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vcam.errors import VcamError
from vcam.v4l2loopback import LABEL

UNIT = "sharpcam.service"


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "systemd" / "user" / UNIT


def unit_text(config: Path | None = None) -> str:
    """The unit file: `vcam start --on-demand` by this interpreter (a service left running all day
    keeps the camera off while no call uses it), with `config` when given."""
    command = [sys.executable, "-m", "vcam", "start", "--on-demand"]
    command += ["--config", str(config.resolve())] if config else []
    return f"""[Unit]
Description=SharpCam: the sharpened webcam as the virtual camera "{LABEL}"
After=graphical-session.target

[Service]
Type=simple
ExecStart={" ".join(_quoted(c) for c in command)}
Restart=on-failure
RestartSec=3
KillSignal=SIGTERM
TimeoutStopSec=5
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=default.target
"""


def _quoted(arg: str) -> str:
    return f'"{arg}"' if any(c.isspace() for c in arg) else arg


@dataclass
class Outcome:
    """What a service action did; `note` is the one line for the user when systemd was not reachable."""

    unit: Path
    note: str = ""


def _systemctl(*args: str) -> tuple[bool, str]:
    """Run `systemctl --user ARGS`; (reached the user manager and succeeded, its first line)."""
    code, text = _run_systemctl(*args)
    return code == 0, text


def _run_systemctl(*args: str) -> tuple[int | None, str]:
    """(exit code, first line of output); code None when there is no systemctl."""
    if shutil.which("systemctl") is None:
        return None, "systemctl is not installed"
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=30)
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return done.returncode, lines[0] if lines else f"exit {done.returncode}"


def install(config: Path | None = None, start: bool = True) -> Outcome:
    """Write the unit, reload systemd and enable it (started now unless `start` is False)."""
    if config is not None and not config.is_file():
        raise VcamError(f"config file {config} not found — create it or leave out --config")
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(config))
    for args in (("daemon-reload",), ("enable", *(["--now"] if start else []), UNIT)):
        ok, why = _systemctl(*args)
        if not ok:
            return Outcome(
                path,
                f"unit written, but systemd's user manager is not reachable here ({why}) — in your "
                f"desktop session run: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}",
            )
    return Outcome(path)


def uninstall() -> Outcome:
    """Stop and disable the service and remove its unit; nothing to do is not an error."""
    path = unit_path()
    note = ""
    if path.exists():
        ok, why = _systemctl("disable", "--now", UNIT)
        if not ok:
            note = f"systemd's user manager is not reachable here ({why}); the unit file is removed"
        path.unlink()
        _systemctl("daemon-reload")
    return Outcome(path, note)


def state() -> str:
    """One line: installed or not, and what systemd says of it."""
    path = unit_path()
    if not path.exists():
        return f"not installed ({path} is absent) — install it with `vcam service install`"
    code, active = _run_systemctl("is-active", UNIT)  # exit 3: reached, and not running
    if code not in (0, 3):
        return f"installed at {path}; systemd's user manager is not reachable here ({active})"
    _, enabled = _run_systemctl("is-enabled", UNIT)
    return f"installed at {path}: {active}, {enabled}"
