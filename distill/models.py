"""Teacher and student networks: plain ``nn.Module``s, hyper-parameters in one dataclass each.

Both predict a residual that is added to the degraded input, so an untrained network starts as
the identity and every step of training is spent on detail, not on reproducing the image.

Teacher: a U-Net of EDSR residual blocks that starts at 1/2 resolution (pixel-unshuffle) and goes
down to 1/8. Deblurring needs a large receptive field; the U-Net buys it at a fraction of the
FLOPs of a flat network, which is what lets it train on a laptop CPU.

Student: designed for ONNX Runtime on a 2-core CPU. It works at 1/2 resolution (pixel-unshuffle
by 2, exported as SpaceToDepth/DepthToSpace; `scale=4` works at 1/4, the design of the earlier
versions, which at equal MACs gained about half as much), on luma only: the predicted luma
residual is added to R, G and B alike, which changes Y and leaves the chroma (B−Y, R−Y) of the
input untouched — the public RGB contract for the cost of one channel instead of three. Its
blocks are re-parameterisable (3×3 + 1×1 + identity branches while training, folded into one 3×3
conv for export); the shipped tiers have none. With `expand` set, its head and tail (3×3, or 5×5
with `kernel`, as in the fast tier) and the branch's 3×3 train as RepConv branches, folded the
same way (the fast tier). The default and hq tiers add a context branch
(`Context`) between head and tail instead: depth at a coarser resolution, which the quarter-
resolution export runs cheaply; the fast tier is a head and a tail only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LUMA = (0.299, 0.587, 0.114)


@dataclass
class TeacherConfig:
    width: int = 48  # channels at 1/2 resolution; ×2 at 1/4, ×4 at 1/8
    blocks: tuple[int, int, int] = (2, 2, 4)  # residual blocks at 1/2, 1/4 and 1/8 resolution

    size_multiple = 8  # unshuffle ×2, then two stride-2 downs


@dataclass
class StudentConfig:
    """The shipped default tier's design: a head, a context branch and a tail at half resolution
    (weights/README.md). Students train from scratch with 3×3 kernels; the shipped default and
    fast tiers were grown to 5×5 afterwards (`distill train --init`)."""

    channels: int = 16
    blocks: int = 0
    scale: int = 2  # pixel-unshuffle factor: the network runs at 1/scale resolution
    context: int = 16  # width of a branch at half the network's resolution (0: none); see Context
    expand: int = 0  # convs train as RepConv with a 1×1 expansion this wide (0: plain convs)
    # Side of the head's and tail's kernels. Where the INT8 export runs a student at quarter
    # resolution (bodyless, scale 2, ≤ 16 channels) a 5×5 costs what a 3×3 does: either is one
    # 3×3 over 2×2 blocks there (unshuffled_conv).
    kernel: int = 3

    @property
    def size_multiple(self) -> int:
        return self.scale * 2 if self.context else self.scale  # the branch packs the features in 2×2 blocks


# Fields added to StudentConfig after checkpoints were written, with the value they had then.
_BEFORE_FIELDS = {"student": {"scale": 4, "context": 0}}


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))

    def identity_(self) -> None:
        """Compute the identity (a block added to a trained teacher); conv1 stays random, so
        gradients reach it as soon as conv2 leaves zero."""
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)


class Up(nn.Module):
    """1×1 conv then pixel-shuffle: no checkerboard artefacts, cheaper than a transposed conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class Teacher(nn.Module):
    def __init__(self, cfg: TeacherConfig = TeacherConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        n1, n2, n3 = cfg.blocks
        self.head = nn.Conv2d(12, w, 3, padding=1)
        self.enc1 = nn.Sequential(*[ResBlock(w) for _ in range(n1)])
        self.down1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.enc2 = nn.Sequential(*[ResBlock(2 * w) for _ in range(n2)])
        self.down2 = nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1)
        self.mid = nn.Sequential(*[ResBlock(4 * w) for _ in range(n3)])
        self.up2 = Up(4 * w, 2 * w)
        self.dec2 = nn.Sequential(*[ResBlock(2 * w) for _ in range(n2)])
        self.up1 = Up(2 * w, w)
        self.dec1 = nn.Sequential(*[ResBlock(w) for _ in range(n1)])
        self.tail = nn.Conv2d(w, 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def feature_channels(self) -> int:
        return 2 * self.cfg.width

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """RGB in [0,1] → restored RGB; with `return_features`, also the 1/4-resolution decoder
        features that the student mimics (same spatial size as the student's)."""
        s1 = self.enc1(self.head(F.pixel_unshuffle(x, 2)))
        s2 = self.enc2(self.down1(s1))
        m = self.mid(self.down2(s2))
        feat = self.dec2(self.up2(m) + s2)
        d1 = self.dec1(self.up1(feat) + s1)
        out = x + F.pixel_shuffle(self.tail(d1), 2)
        return (out, feat) if return_features else out


class SelfEnsemble(nn.Module):
    """A network averaged over the eight flips and transposes of its input, each undone on its
    output (EDSR's self-ensemble): a better teacher for eight times the compute, which an offline
    report can afford and a real-time student cannot. Distilling from it did not make better
    students (weights/README.md), so training uses the plain teacher."""

    VIEWS = 8  # the dihedral group of the square: `_view`'s three bits

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.cfg = net.cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.net(x)
        for view in range(1, self.VIEWS):
            total = total + _undo_view(self.net(_view(x, view)), view)
        return total / self.VIEWS


def _view(x: torch.Tensor, view: int) -> torch.Tensor:
    """View 0–7 of an NCHW batch: bit 2 transposes, bit 1 flips rows, bit 0 flips columns."""
    if view & 4:
        x = x.transpose(2, 3)
    if view & 2:
        x = x.flip(2)
    if view & 1:
        x = x.flip(3)
    return x


def _undo_view(x: torch.Tensor, view: int) -> torch.Tensor:
    if view & 1:
        x = x.flip(3)
    if view & 2:
        x = x.flip(2)
    if view & 4:
        x = x.transpose(2, 3)
    return x


class RepBlock(nn.Module):
    """3×3 + 1×1 + identity, then ReLU; `fold()` turns the three branches into one 3×3 conv.

    The extra branches ease optimisation of a shallow, narrow net (RepVGG, ECBSR) and cost
    nothing at inference.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv3 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv1: nn.Conv2d | None = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1 is None:
            return F.relu(self.conv3(x))
        return F.relu(self.conv3(x) + self.conv1(x) + x)

    @torch.no_grad()
    def fold(self) -> None:
        if self.conv1 is None:
            return
        ch = self.conv3.out_channels
        w = self.conv3.weight.clone()
        w[:, :, 1, 1] += self.conv1.weight[:, :, 0, 0] + torch.eye(ch, device=w.device)
        self.conv3.weight.copy_(w)
        self.conv3.bias.add_(self.conv1.bias)
        self.conv1 = None


class RepConv(nn.Module):
    """A k×k convolution (3×3 unless `kernel` says) trained as three linear branches: k×k, 1×1,
    and a 1×1 expansion to `expand` channels followed by a k×k (ECBSR's edge-oriented block
    without its fixed filters). The extra weights ease the optimisation of a net this narrow;
    their sum is one k×k convolution (`folded`), zero padding included, as the expansion has no
    bias, so inference pays nothing for them. `conv3` is the k×k branch (named when k was 3)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int = 3):
        super().__init__()
        self.conv3 = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.expand = nn.Conv2d(cin, expand, 1, bias=False)
        self.squeeze = nn.Conv2d(expand, cout, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(x) + self.conv1(x) + self.squeeze(self.expand(x))

    def zero_(self) -> None:
        """Output zero; the expansion stays random, so gradients still reach every branch."""
        for conv in (self.conv3, self.conv1, self.squeeze):
            nn.init.zeros_(conv.weight)
        nn.init.zeros_(self.conv3.bias)

    @torch.no_grad()
    def folded(self) -> nn.Conv2d:
        """The one k×k convolution that computes the sum of the branches (for export)."""
        w = self.conv3.weight.clone()
        k = w.shape[-1]
        w[:, :, k // 2, k // 2] += self.conv1.weight[:, :, 0, 0]
        w += torch.einsum("oekl,ei->oikl", self.squeeze.weight, self.expand.weight[:, :, 0, 0])
        conv = nn.Conv2d(self.conv3.in_channels, self.conv3.out_channels, k, padding=k // 2).to(w)
        conv.weight.copy_(w)
        conv.bias.copy_(self.conv3.bias)
        return conv

    @torch.no_grad()
    def load_folded(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Branches whose fold is (weight, bias): the k×k takes them, the 1×1 and squeeze are zero."""
        self.zero_()
        self.conv3.weight.copy_(weight)
        self.conv3.bias.copy_(bias)


def square_conv(cin: int, cout: int, expand: int = 0, kernel: int = 3) -> nn.Conv2d | RepConv:
    """A k×k 'same' convolution, trained as a RepConv when `expand` is set."""
    return RepConv(cin, cout, expand, kernel) if expand else nn.Conv2d(cin, cout, kernel, padding=kernel // 2)


class Context(nn.Module):
    """A residual branch at half the resolution of the features it refines (their 2×2 blocks as
    channels): 1×1 in, 3×3, 1×1 out. It widens the receptive field, which deblurring needs,
    for a fraction of the cost of a block at the features' own resolution; it starts as a no-op.

    `packed` applies it to features already unshuffled by 2 (the quarter-resolution export)."""

    def __init__(self, ch: int, width: int, expand: int = 0):
        super().__init__()
        self.inp = nn.Conv2d(4 * ch, width, 1)
        self.mid = square_conv(width, width, expand)
        self.out = nn.Conv2d(width, 4 * ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _middle(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.mid(F.relu(x))))

    def packed(self, h: torch.Tensor) -> torch.Tensor:
        return h + self._middle(self.inp(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # inp(pixel_unshuffle(h, 2)) as one 2×2 stride-2 convolution: ONNX has no unshuffle of
        # several channels but a 6-D transpose, which ONNX Runtime's INT8 graph runs slowly.
        w = self.inp.weight
        x = F.conv2d(h, w.view(w.shape[0], -1, 2, 2), self.inp.bias, stride=2)
        return h + F.pixel_shuffle(self._middle(x), 2)


class Student(nn.Module):
    def __init__(self, cfg: StudentConfig = StudentConfig()):
        super().__init__()
        if cfg.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, not {cfg.scale}")
        if cfg.kernel not in (3, 5):
            raise ValueError(f"kernel must be 3 or 5, not {cfg.kernel}")
        self.cfg = cfg
        c, packed = cfg.channels, cfg.scale**2
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)
        self.head = square_conv(packed, c, cfg.expand, cfg.kernel)
        self.context = Context(c, cfg.context, cfg.expand) if cfg.context else None
        self.body = nn.ModuleList(RepBlock(c) for _ in range(cfg.blocks))
        self.tail = square_conv(c, packed, cfg.expand, cfg.kernel)
        if isinstance(self.tail, RepConv):
            self.tail.zero_()
        else:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @property
    def feature_channels(self) -> int:
        return self.cfg.channels

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """RGB in [0,1] → restored RGB; with `return_features`, also the output of the middle block
        (the representation mimicry aligns with the teacher's)."""
        residual, feat = self.luma_residual(F.conv2d(x, self.luma))
        out = x + residual
        return (out, feat) if return_features else out

    def luma_residual(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Luma [N,1,H,W] → (the luma residual added to R, G and B alike, middle features).

        The whole network lives here, so it can be exported on its own: the runtime's fast
        `luma8` model form takes the frame's luma and returns this residual."""
        h = F.relu(self.head(F.pixel_unshuffle(y, self.cfg.scale)))
        if self.context is not None:
            h = self.context(h)
        feat = h
        for i, block in enumerate(self.body):
            h = block(h)
            if i == (len(self.body) - 1) // 2:
                feat = h
        return F.pixel_shuffle(self.tail(h), self.cfg.scale), feat

    def fold(self) -> None:
        """Re-parameterise for inference: every multi-branch convolution becomes one of its size."""
        for block in self.body:
            block.fold()
        for name, module in list(self.named_modules()):
            if isinstance(module, RepConv):
                parent, _, attr = name.rpartition(".")
                setattr(self.get_submodule(parent), attr, module.folded())


def config(kind: str, **overrides: Any) -> TeacherConfig | StudentConfig:
    """A model's config from its kind ('teacher' or 'student') and overrides (as in checkpoints)."""
    if kind == "teacher":
        if "blocks" in overrides:
            overrides["blocks"] = tuple(overrides["blocks"])
        return TeacherConfig(**overrides)
    if kind == "student":
        return StudentConfig(**overrides)
    raise ValueError(f"unknown model kind {kind!r} (expected 'teacher' or 'student')")


def build(kind: str, **overrides: Any) -> nn.Module:
    """A model from its kind and config overrides."""
    cfg = config(kind, **overrides)
    return Teacher(cfg) if isinstance(cfg, TeacherConfig) else Student(cfg)


def describe(model: nn.Module) -> dict[str, Any]:
    """Kind + config, enough to rebuild the model with `build` (stored in checkpoints and ONNX)."""
    kind = "teacher" if isinstance(model, Teacher) else "student"
    return {"kind": kind, **asdict(model.cfg)}


def canonical(arch: dict[str, Any]) -> dict[str, Any]:
    """A stored architecture as `describe` writes it now: fields added to a config since the
    checkpoint was written (a student's `scale`) take the value they had before they existed."""
    overrides = dict(arch)
    kind = overrides.pop("kind", "")
    overrides = _BEFORE_FIELDS.get(kind, {}) | overrides
    return {"kind": kind, **asdict(config(kind, **overrides))}


def macs(model: nn.Module, height: int = 720, width: int = 1280) -> int:
    """Multiply-accumulates of the convolutions for one frame (what dominates CPU time)."""
    total = 0

    def count(conv: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        k = conv.kernel_size[0] * conv.kernel_size[1]
        total += out.numel() * conv.in_channels // conv.groups * k

    def count_context_input(branch: Context, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        # Context.forward runs its input convolution as a functional 2×2 stride-2 one, unhooked.
        nonlocal total
        total += inp[0].numel() * branch.inp.out_channels

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(count_context_input) for m in model.modules() if isinstance(m, Context)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    return total
