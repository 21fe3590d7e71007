"""Control of a running `vcam start`: a UNIX socket that `vcam status/stop/toggle/set` talk to.

The socket is `$XDG_RUNTIME_DIR/sharpcam/control.sock` (without XDG_RUNTIME_DIR:
`/tmp/sharpcam-<uid>/`), in a 0700 folder, itself 0600: only the user who started SharpCam
can reach it, and there is no network listener. A socket left by a killed process is found
dead (nobody accepts) and replaced; a live one means SharpCam already runs.

Protocol: line-delimited JSON, one request object per line, one response object per line, any
number per connection.

    {"cmd": "status"}                               -> {"ok": true, "fps_out": 30.0, ...}
    {"cmd": "stop"}                                 -> {"ok": true}
    {"cmd": "toggle"}                               -> {"ok": true, "sharpening": false}
    {"cmd": "set", "key": "strength", "value": 0.6} -> {"ok": true, "strength": 0.6}
      keys: strength (0..1), ema (0..1), model (a tier name or an ONNX path)
    anything that fails                             -> {"ok": false, "error": "one line"}

Settings take effect at the next frame; a model is loaded beside the running one and swapped in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcam import tiers
from vcam.errors import VcamError
from vcam.options import StartOptions
from vcam.pipeline import STAGES, Pipeline
from vcam.sharpener import OnnxSharpener
from vcam.supervised import SupervisedSource
from vcam.temporal import TemporalFilter

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_LINE = 64 * 1024  # a request longer than this is not one of ours


def runtime_dir() -> Path:
    """The per-user folder for the control socket, created 0700."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "sharpcam" if base else Path(tempfile.gettempdir()) / f"sharpcam-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise VcamError(f"{folder} belongs to another user — set XDG_RUNTIME_DIR to a folder of your own")
    folder.chmod(0o700)
    return folder


def socket_path() -> Path:
    return runtime_dir() / "control.sock"


class ControlServer:
    """Listens on the control socket on a thread of its own; `serve(handler)` starts answering."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or socket_path()
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise VcamError(f"SharpCam is already running (control socket {self.path}) — stop it with `vcam stop`")
            self.path.unlink()  # left by a process that was killed
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(umask)
        self._sock.listen(4)
        self._sock.settimeout(0.2)  # how often the accept loop looks at the stop flag
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self, handler: Handler) -> None:
        self._thread = threading.Thread(target=self._accept, args=(handler,), name="vcam-control", daemon=True)
        self._thread.start()

    def _accept(self, handler: Handler) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed under us
                return
            threading.Thread(target=self._converse, args=(conn, handler), name="vcam-control-conn", daemon=True).start()

    def _converse(self, conn: socket.socket, handler: Handler) -> None:
        """One client's requests, answered in order, until it hangs up or is silent for 30 s."""
        conn.settimeout(30.0)
        with conn, contextlib.suppress(OSError):
            self._answer(conn, handler)

    def _answer(self, conn: socket.socket, handler: Handler) -> None:
        for line in conn.makefile("rb"):
            if len(line) > MAX_LINE:
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
            except ValueError as exc:
                reply: dict[str, Any] = {"ok": False, "error": f"not a JSON request object ({exc})"}
            else:
                reply = _safely(handler, request)
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        if self._thread is not None:
            self._thread.join(1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _safely(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": True} | handler(request)
    except VcamError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 — a bug answers one line and keeps the service up
        log.exception("control request %s failed", request)
        return {"ok": False, "error": f"unexpected {type(exc).__name__}: {exc}"}


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def request(message: dict[str, Any], path: Path | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the running SharpCam and return its reply; VcamError when none runs
    or it refuses the request."""
    path = path or socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            line = sock.makefile("rb").readline()
        except (FileNotFoundError, ConnectionRefusedError):
            raise VcamError("SharpCam is not running — start it with `vcam start`") from None
        except OSError as exc:
            raise VcamError(f"cannot talk to SharpCam at {path} ({exc})") from None
    if not line:
        raise VcamError("SharpCam closed the control connection without an answer — is it stopping?")
    reply: dict[str, Any] = json.loads(line)
    if not reply.get("ok"):
        raise VcamError(str(reply.get("error", "request refused")))
    return reply


def wait_gone(path: Path | None = None, timeout: float = 5.0) -> bool:
    """Whether the control socket disappeared (the process ended) within `timeout`."""
    path = path or socket_path()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not path.exists():
            return True
        time.sleep(0.05)
    return not path.exists()


class Controller:
    """Applies control requests to a running pipeline (the handler `ControlServer` calls)."""

    def __init__(self, pipeline: Pipeline, options: StartOptions, stop: threading.Event) -> None:
        self.pipeline = pipeline
        self.options = options
        self.stop = stop

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "stop":
            self.stop.set()
            return {}
        if cmd == "toggle":
            self.pipeline.bypass = not self.pipeline.bypass
            log.info("sharpening %s", "off" if self.pipeline.bypass else "on")
            return {"sharpening": not self.pipeline.bypass}
        if cmd == "set":
            return self.set(str(req.get("key")), req.get("value"))
        raise VcamError(f"unknown command {cmd!r} — use status, stop, toggle or set")

    def set(self, key: str, value: Any) -> dict[str, Any]:
        p = self.pipeline
        if key in ("strength", "ema"):
            number = _number(key, value)
            target = p.sharpener if key == "strength" else p.temporal
            if key == "strength" and not isinstance(target, OnnxSharpener):
                raise VcamError("strength applies to a model, and this pipeline runs none")
            if key == "ema" and not isinstance(target, TemporalFilter):
                raise VcamError("ema applies to the temporal filter, and this pipeline runs none")
            setattr(target, "strength" if key == "strength" else "smoothing", number)
            log.info("%s set to %g", key, number)
            return {key: number}
        if key == "model":
            path = tiers.tier_path(str(value)) if str(value) in tiers.TIERS else Path(str(value))
            strength = p.sharpener.strength if isinstance(p.sharpener, OnnxSharpener) else self.options.strength
            p.sharpener = OnnxSharpener(path, self.options.provider_choice, strength)
            p.replace = None  # a model the user chose stays; no stepping down from it
            log.info("model set to %s", path)
            return {"model": str(path)}
        raise VcamError(f"unknown setting {key!r} — use strength, ema or model")

    def status(self) -> dict[str, Any]:
        p = self.pipeline
        sharpener = p.sharpener
        model = sharpener.path if isinstance(sharpener, OnnxSharpener) else None
        recent = p.times.percentiles((50,), last=30)
        demand = p.source.demand if isinstance(p.source, SupervisedSource) else None
        return {
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - p.started, 1),
            "sharpening": not p.bypass,
            "source": p.source.name,
            "size": list(p.source.size),
            "fps_in": round(p.rates.fps_in, 1),
            "fps_out": round(p.rates.fps_out, 1),
            "dropped": p.source.frames_dropped,
            "frames_out": p.frames_out,
            "stages_p50_ms": {s: round(recent[s]["p50"], 2) for s in STAGES},
            "model": str(model) if model else None,
            "tier": next((t for t, name in tiers.TIERS.items() if model and model.name == name), None),
            "providers": sharpener.providers if isinstance(sharpener, OnnxSharpener) else [],
            "strength": sharpener.strength if isinstance(sharpener, OnnxSharpener) else None,
            "ema": p.temporal.smoothing if isinstance(p.temporal, TemporalFilter) else None,
            "sink": self.options.sink,
            "camera": getattr(p.source, "state", "live"),
            "readers": demand.readers if demand is not None else None,
            "readers_counted_by": demand.counted_by if demand is not None else None,
        }


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise VcamError(f"{key} must be a number between 0 and 1 (got {value!r})") from None
