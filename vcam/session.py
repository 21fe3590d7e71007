"""ONNX Runtime sessions: which execution providers run a model, and where its threads run.

Providers are chosen here and nowhere else (best available first, CPU as the fallback ORT needs
for unsupported ops). Thread placement matters on the 2-4 core laptops SharpCam serves: ORT pins
its workers one per core, and the thread that calls it must stay off their CPUs, or the two
take turns on one core while another idles.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from vcam.errors import ModelError
from vcam.paths import user_cache_dir

AUTO_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Workers spin this long after their last piece of work, then sleep: awake from one layer to
# the next, asleep through the wait for the next camera frame (idle CPU is a user's first worry).
SPIN_US = 2000


@dataclass
class Session:
    """A loaded model: the ORT session, the providers it got, and the CPUs its caller should use."""

    ort: ort.InferenceSession
    providers: list[str]
    caller_cpus: frozenset[int] | None


def open_session(path: Path, provider: str | None = None, threads: int | None = None) -> Session:
    """Load `path` on `provider` (None: the best available) with `threads` intra-op threads
    (None: ORT's default of one pinned worker per physical core; a count leaves them unpinned,
    which makes inference slower and jittery, so it is for machines shared with heavy work)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_US))
    options.log_severity_level = 4  # every ORT error reaches the user as one ModelError line
    providers = resolve_providers(provider)
    before = thread_ids()
    try:
        session = ort.InferenceSession(str(path), options, providers=providers, provider_options=_options(providers))
    except Exception as exc:  # ORT raises several unrelated types for unreadable files
        raise ModelError(
            f"{path} is not a readable ONNX model ({first_line(exc)}); the model must be a valid .onnx file"
        ) from exc
    got = session.get_providers()
    if provider is not None and providers[0] not in got:
        raise ModelError(
            f"provider {provider!r} is installed but could not start (missing CUDA/TensorRT libraries?); "
            "use provider cpu"
        )
    # The workers start with the session; the caller keeps off the CPUs they are pinned to.
    return Session(session, got, cpus_apart_from(thread_ids() - before))


def _friendly(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower()


def resolve_providers(provider: str | None) -> list[str]:
    """ORT's provider list for a user's choice: 'cpu', 'cuda', 'tensorrt' or None for the best
    available; an explicit accelerator keeps CPU after it for its unsupported ops."""
    # Only those SharpCam knows how to set up; the others a build may list (Azure, ...) do not run it.
    available = [p for p in ort.get_available_providers() if p in AUTO_PROVIDERS]
    if provider is None:
        return [p for p in AUTO_PROVIDERS if p in available]
    wanted = provider.strip().lower()
    for name in available:
        if wanted in (name.lower(), _friendly(name)):
            return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    names = ", ".join(_friendly(p) for p in available)
    raise ModelError(
        f"unknown or unavailable provider {provider!r}; available here: {names} "
        "(cuda/tensorrt need `pip install sharpcam[gpu]`)"
    )


def _options(providers: list[str]) -> list[dict[str, str]]:
    """TensorRT builds an engine per input shape, which takes minutes: cache it across starts."""
    cache = user_cache_dir() / "tensorrt"
    return [
        {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
        if p == "TensorrtExecutionProvider"
        else {}
        for p in providers
    ]


def first_line(exc: BaseException, limit: int = 240) -> str:
    """ORT messages can run to several long lines; the user gets the start of the first."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


@contextlib.contextmanager
def on_cpus(cpus: frozenset[int] | None) -> Iterator[None]:
    """Inside the block the calling thread (only it) runs on `cpus`; its own affinity comes
    back after. None leaves it where it is."""
    if not cpus:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def thread_ids() -> set[int]:
    """This process's threads (Linux; empty where /proc is not there)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def cpus_apart_from(workers: set[int]) -> frozenset[int] | None:
    """The CPUs none of `workers` is pinned to, or None when they are not pinned (or every CPU
    has one)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    pinned: set[int] = set()
    for tid in workers:
        try:
            cpus = os.sched_getaffinity(tid)
        except OSError:  # the thread has ended
            continue
        if cpus != allowed:
            pinned |= cpus
    free = allowed - pinned
    return frozenset(free) if pinned and free else None
