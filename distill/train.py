"""Training loop for the teacher and the (distilled) student, readable top to bottom.

One function, `train(cfg)`, trains either network. With `cfg.teacher` set it distils:

    loss = w_gt · L1(student, clean) + w_kd · L1(student, teacher) + w_feat · L1(A(f_s), f_t)

where f_s is the student's middle-block feature map, f_t the teacher's 1/4-resolution decoder
features and A a 1×1 conv adapter (trained with the student, dropped at export). The teacher's
outputs (and features, when mimicked) are computed once over the fixed crop pool and cached, so a distilled step
costs the same as a plain one; with `cfg.teacher` empty the identical student trains on the clean
targets alone (the ablation).

Runs single-process or under `torchrun` (DDP: gloo on CPU, NCCL on GPU), in bf16 autocast on GPUs
and on CPUs with AMX (`precision`).
A checkpoint (`last.pt`) is written every few minutes, on Ctrl-C or SIGTERM and at the end;
running the same command again resumes from it. It is small enough to commit, so that a long run
outlives the machine it started on: the weights and their running average in fp16, no optimiser
state (a resumed run starts a fresh AdamW with a short warm-up). Metrics go to `metrics.jsonl`
and `curves.png` in the run folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from distill.curves import curves_path, plot_curves
from distill.data import Pool, benchmark_set, image_paths, make_pool, to_tensor_batch, write_atomically
from distill.metrics import psnr
from distill.models import ResBlock, Student, build, canonical, describe
from vcam.cpu import cpu_flags
from vcam.paths import user_cache_dir

log = logging.getLogger(__name__)


class TrainingError(Exception):
    """Training cannot go on; the message says what happened and what to do."""


AVERAGED_KEY = "ema"  # the checkpoint format's name for the averaged weights
# Steps after which a network that still ignores its input has died rather than not yet started
# (a zero-initialised tail leaves the identity within a few dozen steps).
DEAD_AFTER = 1000


@dataclass
class TrainConfig:
    kind: str = "teacher"  # 'teacher' or 'student'
    model: dict[str, Any] = field(default_factory=dict)  # overrides of TeacherConfig / StudentConfig
    train_dir: str = "../shared/data/train"
    val_dir: str = "../shared/data/val"
    out: str = "runs/teacher"
    cache: str = ""  # crop pools and teacher targets; empty: the user's cache folder
    crop: int = 128
    pool: int = 8000
    mix: str = "benchmark"  # the degradations of the crops: a name in distill.degrade.MIXES
    batch: int = 16  # global batch, split across DDP processes
    steps: int = 4000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    average_decay: float = 0.999  # running average of the weights, after a warm-up (average_decay_at); 0: none
    eval_every: int = 250
    checkpoint_minutes: float = 3.0
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    precision: str = "auto"  # 'bf16', 'fp32', or 'auto': bf16 on CUDA and on CPUs with AMX (uses_bf16)
    teacher: str = ""  # teacher checkpoint → distillation; empty → ground truth only
    init: str = ""  # checkpoint whose weights a new run starts from (ignored when resuming)
    w_gt: float = 1.0
    w_kd: float = 1.0
    w_feat: float = 0.0  # feature mimicry: 1/4-resolution students only; it did not pay (weights/README.md)


def lr_at(cfg: TrainConfig, step: int, start: int = 0) -> float:
    """Cosine decay to 1 % of the peak over the whole run, under a linear warm-up of `cfg.warmup`
    steps from `start`, the step this process began at: a resumed run has a fresh AdamW, whose
    first updates are as large as the learning rate whatever the gradients, so it warms up again."""
    t = max(0, step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cosine = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return cfg.lr * cosine * min(1.0, (step - start + 1) / cfg.warmup)


def uses_bf16(precision: str, device: str) -> bool:
    """Whether a run computes in bf16 autocast (the weights, their average and the loss stay fp32).

    'auto' takes bf16 on CUDA GPUs and on CPUs with AMX, whose tile instructions run oneDNN's
    bf16 convolutions several times as fast as fp32 (CHANGELOG); on other CPUs bf16 has not been
    measured faster (without AVX-512 BF16 it is emulated), so they stay in fp32."""
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainingError(f"--precision {precision} is not one of auto, bf16, fp32")
    if precision == "auto":
        return device.startswith("cuda") or "amx_bf16" in cpu_flags()
    return precision == "bf16"


def average_decay_at(cfg: TrainConfig, step: int) -> float:
    """Decay of the weights' running average at `step`, warmed up as (1 + step) / (10 + step) up
    to `cfg.average_decay`.

    A fixed 0.999 averages over the last ~1000 steps, which on a short CPU run is much of the run,
    so the average still carries the early, worse weights and validates below the raw ones. With
    the warm-up the average spans about a tenth of the steps so far."""
    return min(cfg.average_decay, (1 + step) / (10 + step))


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    # weights_only: a checkpoint is data; unpickling arbitrary objects would run a stranger's code.
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {path} does not exist") from None
    except Exception as e:
        raise TrainingError(
            f"checkpoint {path} is not readable ({type(e).__name__}); pass a last.pt written by `distill train`"
        ) from None


def model_from_checkpoint(path: str | Path, averaged: bool = True) -> nn.Module:
    """The network stored in a checkpoint, in eval mode: its averaged weights when the checkpoint
    has them and `averaged` is True, else its raw weights."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("arch"), dict) or "model" not in ckpt:
        raise TrainingError(
            f"{path} is not a checkpoint written by `distill train` (no architecture and weights in it)"
        )
    try:
        arch = canonical(ckpt["arch"])  # fields added since it was written take their old values
        model = build(arch.pop("kind", ""), **arch)
        model.load_state_dict(ckpt[AVERAGED_KEY] if averaged and ckpt.get(AVERAGED_KEY) else ckpt["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingError(f"{path} holds an architecture or weights this version cannot build ({first})") from None
    return model.eval()


def _canonical_or_none(arch: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return canonical(arch)
    except (TypeError, ValueError):  # fields or a kind this version does not know: no match
        return None


def _grows(stored: dict[str, Any], arch: dict[str, Any]) -> bool:
    """Whether `arch` is the stored network grown: a student's context branch added or widened, or
    larger head and tail kernels; a teacher's stages deepened by residual blocks. Its weights then
    start from the stored ones and it computes the same picture, which is cheaper than training
    the larger network from scratch."""
    before = _canonical_or_none(stored)
    if before is None or before["kind"] != arch.get("kind"):
        return False
    if before["kind"] == "teacher":
        old, new = tuple(before["blocks"]), tuple(arch["blocks"])
        same_otherwise = before | {"blocks": new} == arch | {"blocks": new}
        return same_otherwise and old != new and all(a <= b for a, b in zip(old, new))
    growable = {k: arch[k] for k in ("context", "kernel")}
    if before | growable != arch or before == arch or any(arch[k] < before[k] for k in growable):
        return False
    if 0 < before["context"] < arch["context"] and arch["expand"]:  # the expansion would mix new channels into old
        raise TrainingError(
            "a context branch trained as RepConv (expand > 0) cannot be widened; widen one trained "
            "with expand 0, or train the wider network from scratch"
        )
    return True


def _load(model: nn.Module, state: dict[str, torch.Tensor], grown: bool) -> None:
    """Load weights. A grown student lacks its context branch's, which keeps that branch's no-op
    start; a widened branch takes the stored weights in its first channels, and the new channels
    start fresh but unheard (zero weights into the old channels and out of the branch); larger
    kernels take the stored ones in their centre taps, the taps around them zero. A deepened
    teacher's new residual blocks, appended to their stages, start as the identity."""
    own = model.state_dict()
    if grown and any(k in own and own[k].shape != v.shape for k, v in state.items()):
        wide = {}
        for key, value in state.items():
            fresh = own.get(key)
            if fresh is None or fresh.dim() != value.dim() or any(a > b for a, b in zip(value.shape, fresh.shape)):
                raise TrainingError(f"the checkpoint's weights do not fit this network ({key})")
            wide[key] = fresh.clone() if fresh.shape[2:] == value.shape[2:] else torch.zeros_like(fresh)
            wide[key][_centred(value.shape, fresh.shape)] = value
        narrow = state.get("context.out.weight")
        if narrow is not None and narrow.shape != own["context.out.weight"].shape:
            old = narrow.shape[1]
            wide["context.out.weight"][:, old:] = 0  # as Context starts, but not left to its init
            wide["context.mid.weight"][:old, old:] = 0
        state = wide
    missing, unexpected = model.load_state_dict(state, strict=not grown)
    new_blocks = []
    for name, m in model.named_modules():
        if isinstance(m, ResBlock) and f"{name}.conv1.weight" in missing:
            m.identity_()
            new_blocks.append(f"{name}.")
    if unexpected or any(not k.startswith(("context.", *new_blocks)) for k in missing):
        raise TrainingError(f"the checkpoint's weights do not fit this network ({(unexpected or missing)[0]})")


def _centred(inner: torch.Size, outer: torch.Size) -> tuple[slice, ...]:
    """Where a smaller weight sits in a larger one: its channels first, its taps in the middle."""
    return tuple(
        slice(0, n) if d < 2 else slice((m - n) // 2, (m - n) // 2 + n) for d, (n, m) in enumerate(zip(inner, outer))
    )


def _file_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module, pool: Pool, cache: Path | None, features: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's output (uint8) for every crop of the pool and, for feature mimicry, its
    1/4-res features (fp16). The features take ~4× the memory of the outputs, so they are kept
    only when asked for: a large pool's would not fit beside a training teacher."""
    if cache and cache.exists():
        z = torch.load(cache, weights_only=True, mmap=True)  # features left unasked stay on disk
        if z.get("feat") is not None or not features:
            return z["out"], z["feat"] if features else None
        del z  # unmapped before the file is replaced (Windows refuses to replace a mapped file)
    out = torch.empty((len(pool), 3, *pool.degraded.shape[1:3]), dtype=torch.uint8)
    feat: torch.Tensor | None = None
    for i in tqdm(range(0, len(pool), 32), desc="teacher targets", leave=False):
        o, f = teacher(to_tensor_batch(pool.degraded[i : i + 32]), return_features=True)
        out[i : i + len(o)] = o.clamp(0, 1).mul(255).round().to(torch.uint8)
        if features:
            if feat is None:
                feat = torch.empty((len(pool), *f.shape[1:]), dtype=torch.float16)
            feat[i : i + len(f)] = f.half()
    if cache:
        write_atomically(cache, lambda tmp: torch.save({"out": out, "feat": feat}, tmp))
    return out, feat


class Trainee(nn.Module):
    """The network being trained plus, when mimicking features, its 1×1 adapter: one module, so
    DDP synchronises both and a checkpoint holds both."""

    def __init__(self, net: nn.Module, adapter: nn.Module | None):
        super().__init__()
        self.net, self.adapter = net, adapter

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred, feat = self.net(x, return_features=True)
        return pred, self.adapter(feat) if self.adapter is not None else feat


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % m, 0, -h % m), mode="reflect")


@torch.no_grad()
def restore(model: nn.Module, img: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Run a network on one uint8 BGR image of any size (reflect-padded as the runtime does)."""
    x = to_tensor_batch(img[None]).to(device)
    h, w = img.shape[:2]
    y = model(pad_to_multiple(x, model.cfg.size_multiple))[..., :h, :w]
    return y.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()[..., ::-1].copy()


def validate(model: nn.Module, val: list[tuple[np.ndarray, np.ndarray]], device: str) -> float:
    """Mean PSNR (dB) over the fixed degraded validation images."""
    model.eval()
    scores = [psnr(restore(model, deg, device), clean) for deg, clean in val]
    model.train()
    return float(np.mean(scores))


@torch.no_grad()
def ignores_its_input(model: nn.Module, x: torch.Tensor) -> bool:
    """True when the network adds the same residual to any input: every activation after its first
    layer has died (ReLUs pushed below zero for good, usually by too high a learning rate), so it
    can only return its input plus a constant and training can no longer revive it."""
    was_training = model.training
    model.eval()
    same = torch.allclose(model(x) - x, model(1 - x) - (1 - x), atol=1e-5)  # the batch and its negative
    model.train(was_training)
    return same


def _forget_metrics_after(path: Path, step: int) -> None:
    """Drop the rows a killed run logged after its last checkpoint: the resumed run logs them again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        write_atomically(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept)))


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) and return the path of the final checkpoint."""
    # ---- processes and devices -------------------------------------------------------------
    ddp = "RANK" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if ddp:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    main = rank == 0
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.batch % world:
        raise TrainingError(f"--batch {cfg.batch} must be divisible by the {world} processes")

    # ---- every option checked before the minutes of building the crop pool ---------------
    try:
        model = build(cfg.kind, **cfg.model).to(device)
    except (TypeError, ValueError) as e:
        raise TrainingError(f"--kind {cfg.kind} --model {json.dumps(cfg.model)}: {e}") from None
    if cfg.teacher and cfg.w_feat > 0 and isinstance(model, Student) and model.cfg.scale != 4:
        raise TrainingError(
            f"--w-feat mimics the teacher's 1/4-resolution features, and a scale-{model.cfg.scale} student's "
            "are at another resolution; pass --w-feat 0"
        )
    bf16 = uses_bf16(cfg.precision, device)
    for option, path in (("--teacher", cfg.teacher), ("--init", cfg.init)):
        if path and not Path(path).is_file():
            raise TrainingError(f"{option} {path} does not exist; pass a checkpoint written by `distill train`")
    image_paths(cfg.train_dir), image_paths(cfg.val_dir)  # each folder exists and holds images
    cache = Path(cfg.cache) if cfg.cache else user_cache_dir() / "distill"

    # ---- data ------------------------------------------------------------------------------
    if main:
        log.info("crop pool and teacher targets are cached in %s", cache)
    try:
        pool = make_pool(cfg.train_dir, cfg.pool, cfg.crop, cfg.seed, cfg.mix, cache)
    except KeyboardInterrupt:
        if main:
            log.warning("interrupted while building the crop pool; nothing was trained or saved yet")
        raise
    val = benchmark_set(cfg.val_dir) if main else []
    input_psnr = float(np.mean([psnr(d, c) for d, c in val])) if main else 0.0

    # ---- model, optimiser, weight average --------------------------------------------------
    distilling = bool(cfg.teacher)
    adapter = None
    if distilling:
        teacher = model_from_checkpoint(cfg.teacher)
        if cfg.w_feat > 0:
            adapter = nn.Conv2d(model.feature_channels, teacher.feature_channels, 1).to(device)
        # The teacher and the pool's own key: another data folder gives another pool of this size
        t_out, t_feat = teacher_targets(
            teacher, pool, cache / f"teacher-{_file_digest(cfg.teacher)}-{pool.key}.pt", features=cfg.w_feat > 0
        )
        del teacher
    trainee = Trainee(model, adapter)

    # ---- resume, or start from --init ------------------------------------------------------
    step, elapsed, best = 0, 0.0, -math.inf
    last = out / "last.pt"
    source = last if last.exists() else Path(cfg.init) if cfg.init else None
    ckpt = load_checkpoint(source, device) if source else {}
    grown = source is not None and source != last and _grows(ckpt["arch"], describe(model))
    if source and not grown and _canonical_or_none(ckpt["arch"]) != describe(model):
        fix = (
            "pass a new --out or the matching --model options"
            if source == last
            else "pass --init of the same architecture, or of the same one with no or a narrower context "
            "branch or smaller kernels, or a teacher with fewer blocks"
        )
        raise TrainingError(f"{source} holds a {ckpt['arch']} but this run trains a {describe(model)}; {fix}")
    if source:
        _load(model, ckpt["model"], grown)
        if adapter is not None and ckpt.get("adapter"):
            adapter.load_state_dict(ckpt["adapter"])
    # oneDNN's and cuDNN's convolutions run fastest on NHWC tensors.
    model.to(memory_format=torch.channels_last)
    averaged = copy.deepcopy(model).eval().requires_grad_(False) if cfg.average_decay else None
    if averaged is not None and ckpt.get(AVERAGED_KEY):
        _load(averaged, ckpt[AVERAGED_KEY], grown)
    if source == last:
        step, elapsed, best = ckpt["step"], ckpt["elapsed"], ckpt["best"]
        if main:
            _forget_metrics_after(out / "metrics.jsonl", step)
            log.info("resumed %s at step %d", last, step)
    elif source and main:
        log.info("starting from the weights of %s", source)
    start = step
    opt = torch.optim.AdamW(trainee.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    net = nn.parallel.DistributedDataParallel(trainee) if ddp else trainee

    def save(path: Path) -> None:
        def half(m: nn.Module | None) -> dict[str, torch.Tensor] | None:
            return (
                {k: v.half() if v.is_floating_point() else v for k, v in m.state_dict().items()}
                if m is not None
                else None
            )

        if not main:
            return
        state = {
            "arch": describe(model),
            "config": asdict(cfg) | {"precision": "bf16" if bf16 else "fp32"},  # what `auto` chose
            "model": half(model),
            "adapter": half(adapter),
            AVERAGED_KEY: half(averaged),
            "step": step,
            "elapsed": elapsed,
            "best": best,
        }
        # Never overwrite a good checkpoint with diverged weights (or ones beyond fp16's range).
        weights = [state["model"], state["adapter"], state[AVERAGED_KEY]]
        if not all(torch.isfinite(v).all() for w in weights if isinstance(w, dict) for v in w.values()):
            return
        write_atomically(path, lambda tmp: torch.save(state, tmp))

    # ---- loop ------------------------------------------------------------------------------
    # Line-buffered, readable live; other ranks write to nowhere.
    metrics = (out / "metrics.jsonl").open("a", buffering=1) if main else open(os.devnull, "w")
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
    if main:
        log.info("computing in %s", "bf16 autocast" if bf16 else "fp32")
    per_rank = cfg.batch // world
    probe = to_tensor_batch(pool.degraded[:per_rank]).to(device)
    bar = tqdm(total=cfg.steps, initial=step, disable=not main, dynamic_ncols=True)
    last_save = last_step_end = time.time()
    step_seconds = resumed_at = 0.0
    # A SIGSTOP pause (another job took the cores) is not training time: the step during which
    # SIGCONT ended it counts as long as the one before it. The handler only stamps the time (no
    # locks in a signal handler); a pause lies within the one step whose interval holds the
    # stamp. On rank 0, waiting for a paused other rank still counts.

    def on_sigcont(*_: Any) -> None:
        nonlocal resumed_at
        resumed_at = time.time()

    previous_sigcont = signal.signal(signal.SIGCONT, on_sigcont)
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill = Ctrl-C: save first
    try:
        while step < cfg.steps:
            # Batches depend only on (seed, rank, step): a resumed run draws what it would have.
            idx = np.sort(np.random.default_rng([cfg.seed, rank, step]).integers(0, len(pool), per_rank))
            x = to_tensor_batch(pool.degraded[idx]).to(device, memory_format=torch.channels_last)
            y = to_tensor_batch(pool.clean[idx]).to(device, memory_format=torch.channels_last)
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, start)
            with autocast:
                pred, feat = net(x)
                terms = {"gt": F.l1_loss(pred, y)}
                if distilling:
                    terms["kd"] = F.l1_loss(pred, t_out[idx].to(device).float().div(255))
                    if cfg.w_feat > 0:
                        assert t_feat is not None
                        terms["feat"] = F.l1_loss(feat, t_feat[idx].to(device).float())
                loss = cfg.w_gt * terms["gt"] + cfg.w_kd * terms.get("kd", 0) + cfg.w_feat * terms.get("feat", 0)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at step {step}; the last good checkpoint is {last} — "
                    "lower --lr and run again to resume"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainee.parameters(), 1.0)
            opt.step()
            if averaged is not None:
                with torch.no_grad():
                    for pa, pm in zip(averaged.parameters(), model.parameters()):
                        pa.lerp_(pm, 1 - average_decay_at(cfg, step))
            step += 1
            now = time.time()
            if not last_step_end < resumed_at <= now:
                step_seconds = now - last_step_end
            elapsed += step_seconds
            last_step_end = now
            bar.update(1)
            if main and step % 10 == 0:
                row = {"step": step, "time": round(elapsed, 1), "lr": lr_at(cfg, step, start), "loss": loss.item()}
                row.update({f"loss_{k}": v.item() for k, v in terms.items()})
                metrics.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            # Every rank probes its replica (the same weights) with the same crops: all stop together.
            if step % cfg.eval_every == 0 and step >= DEAD_AFTER and ignores_its_input(model, probe):
                raise TrainingError(
                    f"at step {step} the network adds the same residual to any input: its activations "
                    f"died; start again with a new --out and a lower --lr than {cfg.lr:g}"
                )
            if main and (step % cfg.eval_every == 0 or step == cfg.steps):
                score = validate(averaged if averaged is not None else model, val, device)
                metrics.write(
                    json.dumps({"step": step, "time": round(elapsed, 1), "val_psnr": score, "input_psnr": input_psnr})
                    + "\n"
                )
                bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{score:.2f}dB (+{score - input_psnr:.2f})")
                if score > best:
                    best = score
                    save(out / "best.pt")
            if time.time() - last_save > cfg.checkpoint_minutes * 60:
                save(last)
                last_save = time.time()
    except KeyboardInterrupt:
        save(last)
        if main:
            log.warning("interrupted at step %d; checkpoint saved to %s — run the same command to resume", step, last)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        signal.signal(signal.SIGCONT, previous_sigcont)
        bar.close()
        if metrics:
            metrics.close()
        if ddp:
            dist.destroy_process_group()
    save(last)
    if main:
        plot_curves(out / "metrics.jsonl", curves_path(out / "metrics.jsonl"))
    return last
