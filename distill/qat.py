"""Quantisation-aware fine-tuning: a trained student learns to work through the INT8 arithmetic
it will run with.

The INT8 export (`distill.export.quantize_luma8`) rounds each convolution's weights to
`WEIGHT_QMAX` levels a side per output channel and each activation to uint8 over its calibrated
range. The lost weight bit (the price of exact arithmetic on AVX2) costs accuracy after
post-training quantisation; fine-tuning through the same rounding, with straight-through
gradients, wins it back. The student is fine-tuned in the form that is quantised (each block
folded into one 3×3 conv) and stored back unfolded, so every tool reads the result as any other
student checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distill.data import benchmark_set, make_pool, to_tensor_batch, write_atomically
from distill.models import RepConv, Student, StudentConfig, describe
from distill.train import AVERAGED_KEY, TrainingError, load_checkpoint, model_from_checkpoint, validate
from vcam.paths import user_cache_dir

log = logging.getLogger(__name__)

# Weights are symmetric per output channel in [-64, 64] (ONNX Runtime's reduce_range): then any
# pair of uint8 x int8 products, the unit AVX2's vpmaddubsw adds in int16, stays below 2^15.
WEIGHT_QMAX = 64


@dataclass
class QatConfig:
    train_dir: str = "../shared/data/train"
    val_dir: str = "../shared/data/val"
    calib_dir: str = "../shared/data/train"  # the export's calibration images: the same ranges
    calib_images: int = 24
    cache: str = ""  # where the crop pool is cached; empty: the user's cache folder
    crop: int = 128
    pool: int = 8000
    batch: int = 16
    steps: int = 2000
    lr: float = 1e-4
    seed: int = 0


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (x.round() - x).detach()


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel rounding to ±WEIGHT_QMAX levels, as the export quantises."""
    scale = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / WEIGHT_QMAX
    return _round_ste(w / scale) * scale


def fake_quant(x: torch.Tensor, scale: float, zero_point: int = 0) -> torch.Tensor:
    """uint8 rounding with a fixed scale; values outside the range clip (and pass no gradient)."""
    lo, hi = -zero_point * scale, (255 - zero_point) * scale
    return _round_ste(x.clamp(lo, hi) / scale) * scale


def _conv(conv: nn.Module, x: torch.Tensor, quantize_weight: bool) -> torch.Tensor:
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{type(conv).__name__} is not a convolution: fold the student first")
    w = fake_quant_weight(conv.weight) if quantize_weight else conv.weight
    return F.conv2d(x, w, conv.bias, padding=conv.padding)


def luma_residual(
    student: Student, y: torch.Tensor, activation: Callable[[int, torch.Tensor], torch.Tensor], quantize_weights: bool
) -> torch.Tensor:
    """The folded student's luma residual, `activation(i, t)` applied to the i-th tensor that the
    INT8 model stores as uint8 (each ReLU output, and in the context branch its output and the
    sum), in the order they are computed. Half resolution and the INT8 model's quarter hold the
    same numbers in another layout, so one form serves both."""
    points = itertools.count()
    h = activation(next(points), F.relu(_conv(student.head, F.pixel_unshuffle(y, student.cfg.scale), quantize_weights)))
    branch = student.context
    if branch is not None:  # Context.packed on the 2×2 blocks, as the quarter-resolution export runs it
        z = activation(next(points), F.relu(_conv(branch.inp, F.pixel_unshuffle(h, 2), quantize_weights)))
        z = activation(next(points), F.relu(_conv(branch.mid, z, quantize_weights)))
        z = activation(next(points), F.pixel_shuffle(_conv(branch.out, z, quantize_weights), 2))
        h = activation(next(points), h + z)
    for block in student.body:
        if block.conv1 is not None:  # its 3×3 alone is not what the block computes
            raise TypeError("a RepBlock is not folded: fold the student first")
        h = activation(next(points), F.relu(_conv(block.conv3, h, quantize_weights)))
    return F.pixel_shuffle(_conv(student.tail, h, quantize_weights), student.cfg.scale)


class QuantizedStudent(nn.Module):
    """A folded student computed as the INT8 model computes it: uint8 luma in, weights and
    activations rounded, the residual rounded to levels around 128."""

    def __init__(self, student: Student, ranges: list[tuple[float, int]]):
        super().__init__()
        self.net, self.ranges, self.cfg = student, ranges, student.cfg
        self.register_buffer("luma", student.luma.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fake_quant(F.conv2d(x, self.luma), 1 / 255)
        r = luma_residual(self.net, y, lambda i, t: fake_quant(t, *self.ranges[i]), quantize_weights=True)
        return x + fake_quant(r, 1 / 255, 128)


@torch.no_grad()
def activation_ranges(student: Student, images: list[np.ndarray]) -> list[tuple[float, int]]:
    """(scale, zero point) of each uint8 activation over the calibration images, as ONNX Runtime's
    MinMax calibration sets them: the range widened to hold 0, split into 255 steps."""
    lows: dict[int, float] = {}
    highs: dict[int, float] = {}

    def observe(i: int, t: torch.Tensor) -> torch.Tensor:
        lows[i] = min(lows.get(i, 0.0), float(t.min()))
        highs[i] = max(highs.get(i, 0.0), float(t.max()))
        return t

    m = student.cfg.size_multiple
    for img in images:
        h, w = img.shape[0] // m * m, img.shape[1] // m * m
        x = to_tensor_batch(img[None, :h, :w])
        luma_residual(student, fake_quant(F.conv2d(x, student.luma), 1 / 255), observe, quantize_weights=False)
    ranges = []
    for i in sorted(lows):
        span = highs[i] - lows[i]
        scale = span / 255 if span > 0 else 1.0  # an all-zero tensor: ONNX Runtime's scale 1
        ranges.append((scale, round(-lows[i] / scale)))
    return ranges


@torch.no_grad()
def unfold(student: Student) -> Student:
    """A fresh, unfolded student whose `fold()` gives exactly `student`'s folded convolutions:
    each block's 1×1 branch zero and the identity subtracted from its 3×3 centre tap, each
    RepConv's folded weights in its k×k branch (`conv3`) and its other branches' output zero."""
    out = Student(StudentConfig(**{k: v for k, v in describe(student).items() if k != "kind"}))
    state = student.state_dict()
    reps = [(name, m) for name, m in out.named_modules() if isinstance(m, RepConv)]
    for name, conv in reps:
        conv.load_folded(state.pop(f"{name}.weight"), state.pop(f"{name}.bias"))
    missing, _ = out.load_state_dict(state, strict=False)
    assert all(".conv1." in k or k.startswith(tuple(f"{name}." for name, _ in reps)) for k in missing), missing
    for block in out.body:
        assert block.conv1 is not None
        block.conv1.weight.zero_()
        block.conv1.bias.zero_()
        block.conv3.weight[:, :, 1, 1] -= torch.eye(block.conv3.out_channels)
    return out


def finetune(checkpoint: str | Path, out: str | Path, cfg: QatConfig = QatConfig()) -> dict[str, float]:
    """Fine-tune the student in `checkpoint` through INT8 rounding and write it to `out` (a
    weights-only checkpoint). Returns the validation PSNR of the simulated INT8 model before
    and after, and of the float model it started from."""
    torch.manual_seed(cfg.seed)
    source = load_checkpoint(checkpoint)
    student = model_from_checkpoint(checkpoint)
    if not isinstance(student, Student):
        raise TrainingError(f"{checkpoint} holds a teacher; quantisation-aware fine-tuning is for students")
    student.fold()
    reference = model_from_checkpoint(checkpoint)  # the float student: part of the target
    calibration = [d for d, _ in benchmark_set(cfg.calib_dir)[: cfg.calib_images]]
    quantized = QuantizedStudent(student, activation_ranges(student, calibration))
    val = benchmark_set(cfg.val_dir)
    scores = {"float": validate(reference, val, "cpu"), "int8_before": validate(quantized, val, "cpu")}
    # The crops the student trained on; checkpoints from before the mixes saw the benchmark's.
    mix = (source.get("config") or {}).get("mix", "benchmark")
    pool = make_pool(cfg.train_dir, cfg.pool, cfg.crop, cfg.seed, mix, cfg.cache or user_cache_dir() / "distill")
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    quantized.train()
    for step in range(cfg.steps):
        idx = np.sort(np.random.default_rng([cfg.seed, step]).integers(0, len(pool), cfg.batch))
        x, y = to_tensor_batch(pool.degraded[idx]), to_tensor_batch(pool.clean[idx])
        with torch.no_grad():
            target = reference(x)
        pred = quantized(x)
        loss = F.l1_loss(pred, y) + F.l1_loss(pred, target)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            log.info("qat step %d/%d loss %.4f", step, cfg.steps, loss.item())
    scores["int8_after"] = validate(quantized, val, "cpu")
    qat = {
        "steps": cfg.steps,
        "lr": cfg.lr,
        "crop": cfg.crop,
        "pool": cfg.pool,
        "val_psnr_simulated_int8": round(scores["int8_after"], 3),
    }
    state = {
        "arch": source["arch"],
        "model": unfold(student).state_dict(),
        AVERAGED_KEY: None,
        "config": source.get("config"),
        "step": source.get("step"),
        "qat": qat,
    }
    write_atomically(Path(out), lambda tmp: torch.save(state, tmp))
    return scores
