"""`vcam`: a thin typer layer over the library (`open_pipeline`, `run_bench`, `run_checks`).

Every failure the user can fix — a VcamError from the library or a bad option caught by typer —
is printed as ONE line `error: <message>` on stderr with exit code 2; no traceback, no usage box.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from vcam.errors import VcamError
from vcam.options import DEFAULTS, StartOptions, check, help_for

log = logging.getLogger("vcam")


class _OneLineErrors(TyperGroup):
    """Runs commands non-standalone so that errors of every kind end in the same one line."""

    def main(  # type: ignore[override]  # narrower than click's, which it only forwards to
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except VcamError as exc:
            code = _fail(str(exc), 2)
        except typer.TyperException as exc:  # click's usage errors (typer vendors click)
            code = _fail(exc.format_message(), 2)
        except (typer.Abort, KeyboardInterrupt):  # Ctrl+C before `start` took over SIGINT
            code = 130
        except Exception as exc:  # noqa: BLE001 — even a bug reaches the user as one line
            code = _fail(
                f"unexpected {type(exc).__name__}: {exc} — this is a bug, please report it with the command you ran", 1
            )
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> int:
    typer.echo(f"error: {message}", err=True)
    return code


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="SharpCam: webcam -> sharpening CNN -> the 'SharpCam' virtual camera.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vcam {importlib.metadata.version('sharpcam')}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """SharpCam: webcam -> sharpening CNN -> the 'SharpCam' virtual camera."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@contextlib.contextmanager
def _logging(level: str) -> Iterator[None]:
    """Log to the current stderr for the duration of a command (test runners swap stderr).
    OpenCV's own warnings show at `debug` only (and never while a camera opens: quiet_opencv)."""
    check("log_level", level)
    from vcam.camera import quiet_opencv

    numeric = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(numeric)
    try:
        with contextlib.nullcontext() if numeric <= logging.DEBUG else quiet_opencv():
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _option(name: str, *flags: str) -> Any:
    """The typer option for StartOptions field `name`: its default and help, written there."""
    return typer.Option(getattr(DEFAULTS, name), *flags, help=help_for(name))


def _effective(ctx: typer.Context, config: Path | None) -> tuple[StartOptions, dict[str, str]]:
    """The command line's options over the config file's over the defaults, each checked."""
    from vcam.config import merge

    sources = {name: ctx.get_parameter_source(name) for name in ctx.params if name != "config"}
    typed = {name for name, source in sources.items() if source is not None and source.name != "DEFAULT"}
    options, origin = merge({k: v for k, v in ctx.params.items() if k != "config"}, typed, config)
    for name, value in vars(options).items():
        try:
            check(name, value)
        except VcamError as exc:
            where = "--" + name.replace("_", "-") if origin[name] == "command line" else origin[name]
            raise VcamError(f"{exc} [{where}]") from None
    return options, origin


@app.command()
def start(
    ctx: typer.Context,
    source: str = _option("source"),
    model: str | None = _option("model"),
    tier: str | None = _option("tier"),
    sink: str = _option("sink"),
    device: str | None = _option("device"),
    width: int = _option("width"),
    height: int = _option("height"),
    fps: float = _option("fps"),
    strength: float = _option("strength"),
    ema: float = _option("ema"),
    provider: str = _option("provider"),
    frames: int | None = _option("frames"),
    overwrite: bool = _option("overwrite", "--overwrite"),
    on_demand: bool = _option("on_demand", "--on-demand/--always-on"),
    log_level: str = _option("log_level"),
    config: Path | None = typer.Option(None, help="Config file [default: ~/.config/sharpcam/config.toml]."),
) -> None:
    """Run the sharpened camera in the foreground until Ctrl+C / SIGTERM."""
    options, _ = _effective(ctx, config)
    # Ctrl+C / SIGTERM from here on only ask the loop to stop, even while the libraries load
    # (an interrupt inside an extension module's import fails that import).
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        from vcam.control import Controller, ControlServer  # here, not at the top: keeps `vcam --help` fast
        from vcam.pipeline import open_pipeline

        with _logging(options.log_level), _control(ControlServer) as server, open_pipeline(options) as pipeline:
            if server is not None:
                server.serve(Controller(pipeline, options, stop))
            count = pipeline.run(stop, options.frames)
            log.info("stopped after %d frames", count)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _control(server_class: Any) -> Iterator[Any]:
    """The control socket, bound before the camera opens so that a second start fails at once;
    where it cannot be created SharpCam runs without it."""
    try:
        server = server_class()
    except OSError as exc:
        log.warning("no control socket (%s): vcam status/stop/set will not reach this instance", exc)
        yield None
        return
    with server:
        yield server


config_app = typer.Typer(help="The config file: ~/.config/sharpcam/config.toml.", add_completion=False)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, help="Config file [default: ~/.config/sharpcam/config.toml]."),
) -> None:
    """The options `vcam start` would run with, and where each comes from."""
    from vcam.config import default_path, merge

    options, origin = merge({}, set(), config)
    typer.echo(f"# {config or default_path()}" + ("" if (config or default_path()).is_file() else " (not there)"))
    for name, value in vars(options).items():
        shown = "(none)" if value is None else json.dumps(value)
        typer.echo(f"{name} = {shown}    # {origin[name]}")


service_app = typer.Typer(help="SharpCam as a systemd user service (starts at login).", add_completion=False)
app.add_typer(service_app, name="service")


@service_app.command("install")
def service_install(
    config: Path | None = typer.Option(None, help="Config file the service starts with [default: the user's]."),
    now: bool = typer.Option(True, "--now/--no-now", help="Start it now as well as at every login."),
) -> None:
    """Write, enable and start the user unit; print the lines that load the driver at boot."""
    from vcam import service
    from vcam.v4l2loopback import BOOT_COMMANDS

    outcome = service.install(config, now)
    typer.echo(f"wrote {outcome.unit}")
    if outcome.note:
        typer.echo(outcome.note, err=True)
    typer.echo("to create the SharpCam device at every boot (needs root), run once:")
    for line in BOOT_COMMANDS:
        typer.echo(f"  {line}")


@service_app.command("uninstall")
def service_uninstall() -> None:
    """Stop and disable the service and remove its unit."""
    from vcam import service

    outcome = service.uninstall()
    if outcome.note:
        typer.echo(outcome.note, err=True)
    typer.echo(f"removed {outcome.unit}")


@service_app.command("status")
def service_status() -> None:
    """Whether the unit is installed and what systemd says of it."""
    from vcam import service

    typer.echo(service.state())


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print the raw JSON reply.")) -> None:
    """What the running SharpCam is doing: rates, stage times, model, settings."""
    from vcam.control import request

    reply = request({"cmd": "status"})
    if as_json:
        typer.echo(json.dumps(reply, indent=2))
        return
    minutes, seconds = divmod(int(reply["uptime_s"]), 60)
    stages = ", ".join(f"{k} {v:.1f}" for k, v in reply["stages_p50_ms"].items())
    model = Path(reply["model"]).name if reply["model"] else "none"
    lines = [
        f"SharpCam running for {minutes // 60}:{minutes % 60:02d}:{seconds:02d} (pid {reply['pid']}), "
        f"sharpening {'on' if reply['sharpening'] else 'off'}",
        f"  {reply['source']} {reply['size'][0]}x{reply['size'][1]} -> {reply['sink']}: in {reply['fps_in']:.1f} fps, "
        f"out {reply['fps_out']:.1f} fps, {reply['dropped']} frames dropped",
        f"  model {model} (tier {reply['tier'] or '-'}, {', '.join(reply['providers']) or '-'}), "
        f"strength {reply['strength']}, ema {reply['ema']}",
        f"  p50 ms: {stages}",
        f"  camera {reply['camera']}"
        + (
            ""
            if reply["readers"] is None
            else f", on demand: {reply['readers']} reader(s) ({reply['readers_counted_by']})"
        ),
    ]
    typer.echo("\n".join(lines))


@app.command()
def stop() -> None:
    """Stop the running SharpCam (as Ctrl+C or SIGTERM would)."""
    from vcam.control import request, wait_gone

    request({"cmd": "stop"})
    if not wait_gone():
        raise VcamError("SharpCam was asked to stop but is still running after 5 s — check `vcam status`")
    typer.echo("stopped")


@app.command()
def toggle() -> None:
    """Sharpening on/off without a restart: the before/after, mid-call."""
    from vcam.control import request

    reply = request({"cmd": "toggle"})
    typer.echo(f"sharpening {'on' if reply['sharpening'] else 'off'}")


@app.command("set")
def set_(
    key: str = typer.Argument(..., help="strength, ema or model."),
    value: str = typer.Argument(..., help="0..1 for strength and ema; a tier name or an ONNX path for model."),
) -> None:
    """Change a setting of the running SharpCam; it applies from the next frame."""
    from vcam.control import request
    from vcam.tiers import TIERS

    if key == "model" and value not in TIERS:
        value = str(Path(value).resolve())  # the service may run in another folder
    reply = request({"cmd": "set", "key": key, "value": value})
    typer.echo(f"{key} = {reply[key]}")


@app.command()
def sharpen(
    inputs: list[Path] = typer.Argument(..., help="A video, or one or more images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output video (.mp4/.avi), image, or folder for many images."),
    model: str | None = typer.Option(None, help="ONNX model [default: the hq tier]."),
    tier: str | None = _option("tier"),
    strength: float = _option("strength"),
    ema: float = _option("ema"),
    provider: str = _option("provider"),
    overwrite: bool = _option("overwrite", "--overwrite"),
) -> None:
    """Sharpen files through the live pipeline's stages, as fast as the CPU goes."""
    from vcam.offline import sharpen_files

    options = StartOptions(model=model, tier=tier, strength=strength, ema=ema, provider=provider, overwrite=overwrite)
    for name in ("tier", "strength", "ema", "provider"):
        check(name, getattr(options, name))
    with _logging("warning"), typer.progressbar(length=1, label="sharpening", show_pos=True, show_eta=True) as bar:

        def progress(done: int, total: int | None) -> None:
            bar.length = total or max(done, 1)
            bar.update(done - bar.pos)

        written = sharpen_files(inputs, out, options, progress)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def bench(
    model: Path | None = typer.Option(None, help="ONNX model [default: the default tier]."),
    tier: str | None = typer.Option(None, help="fast, default or hq: a shipped model instead of --model."),
    sizes: str = typer.Option("480p,720p,1080p", help="Comma list of 480p/720p/1080p/WxH."),
    frames: int = typer.Option(100, help="Measured frames per size and method."),
    source: str = typer.Option("synthetic", help="'synthetic' or a video file."),
    fps: float = typer.Option(30.0, help="Rate the frames are handed over at, like a camera."),
    provider: str = _option("provider"),
    ema: float = _option("ema"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
    out: Path | None = typer.Option(None, help="Also write the report (.json or .md)."),
) -> None:
    """Latency per stage, throughput and CPU of the real pipeline vs unsharp mask and CAS."""
    from vcam.bench import check_report_path, format_report, parse_sizes, run_bench, write_report
    from vcam.tiers import check_choice, tier_path

    check_choice(model, tier)
    if out is not None:
        check_report_path(out)
    _steady_state_malloc()
    report = run_bench(
        model if model is not None else tier_path(tier or "default"),
        parse_sizes(sizes),
        frames,
        source,
        fps,
        None if provider == "auto" else provider,
        ema,
    )
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if out is not None:
        write_report(report, out)


@app.command()
def devices() -> None:
    """List cameras that deliver frames and v4l2loopback devices (SharpCam marked)."""
    from vcam.camera import list_cameras
    from vcam.v4l2loopback import LABEL, MODPROBE, list_loopback_devices

    cameras = list_cameras()
    typer.echo("cameras (--source):")
    for index, (w, h) in cameras:
        typer.echo(f"  {index}  {w}x{h}")
    if not cameras:
        typer.echo("  none found — use --source FILE to run on a video file")
    if sys.platform != "linux":
        typer.echo("virtual camera: OBS Virtual Camera (install OBS Studio once)")
        return
    loopback = list_loopback_devices()
    typer.echo("virtual cameras (v4l2loopback):")
    for path, label in loopback:
        typer.echo(f"  {path}  {label}" + ("  <- used by vcam start" if label == LABEL else ""))
    if not any(label == LABEL for _, label in loopback):
        typer.echo(f"  no {LABEL} device — create it with: {MODPROBE}")


@app.command()
def doctor(
    model: Path | None = typer.Option(None, help="ONNX model [default: the installed one]."),
    source: str = typer.Option("0", help="Camera or file to check."),
) -> None:
    """Check everything `vcam start` needs; each failed check prints its fix."""
    from vcam.doctor import run_checks

    checks = run_checks(model, source)
    for item in checks:
        note = "" if item.ok or item.essential else " (warning only)"
        typer.echo(f"{'✓' if item.ok else '✗'} {item.name}: {item.detail}{note}")
    if not all(item.ok for item in checks if item.essential):
        raise typer.Exit(1)


def _steady_state_malloc() -> None:
    """Keep glibc from serving every array over 128 KB with fresh pages from mmap, for the whole
    bench process: the baselines allocate their temporaries per frame, and a page fault per 4 KB
    of fresh memory made them several times slower until, by chance, glibc raised its threshold.
    The pipeline allocates nothing per frame, so this only makes the baselines' figures fair."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    libc.mallopt(m_trim_threshold, 64 << 20)
