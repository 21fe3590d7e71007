"""The SharpCam model contract: what an ONNX file must be for `vcam` to run it.

Any tool can produce a model; `vcam` checks it on load and refuses it in one line naming the
mismatch. This docstring is the contract's one written copy (the README links here).

Tensors: one input named `input`, one output, both 4-D [1, C, H, W] with dynamic H and W; the
output keeps the input's H and W. The metadata key `vcam.io` picks the I/O form:

* `rgb` (the default, what any exporter produces): float32 RGB in [0, 1] in and out, C = 3;
* `luma8`: uint8 luma in (BT.601 full range, as `cv2.COLOR_BGR2GRAY` computes it), uint8 luma
  residual + 128 out, C = 1; the runtime adds the residual to the frame. With `vcam.luma8_block`
  = b both tensors come packed as SpaceToDepth packs them, C = b*b at H/b x W/b (channel
  by*b + bx holds pixel (b*y + by, b*x + bx)), because the runtime packs faster than the graph.

Metadata (all values strings): `vcam.size_multiple` (H and W the model accepts are multiples of
it; frames are reflect-padded to it, default 1), `vcam.luma8_block` (default 1), and for people
reading them `vcam.name`, `vcam.version` and whatever facts the exporter records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcam.errors import ModelError
from vcam.forms import FORMS

IO = "vcam.io"
SIZE_MULTIPLE = "vcam.size_multiple"
LUMA8_BLOCK = "vcam.luma8_block"
NAME = "vcam.name"
VERSION = "vcam.version"
QUANTIZATION = "vcam.quantization"


SUMMARY = (
    "the model contract (vcam/contract.py): one input named 'input', float32 [1,3,H,W] RGB in 0..1 "
    "with dynamic H and W, output of the same shape (or, with metadata vcam.io=luma8, uint8 "
    "[1,1,H,W] luma in and luma residual + 128 out)"
)


@dataclass(frozen=True)
class Contract:
    """What a model declares: its I/O form, the size multiple and the packing block."""

    form: str
    size_multiple: int
    block: int
    output_name: str


def read(path: Path, metadata: dict[str, str], inputs: list[Any], outputs: list[Any]) -> Contract:
    """Check a loaded model's tensors (ONNX Runtime NodeArgs) and metadata against the
    contract; a ModelError names the first mismatch."""

    def refuse(what: str) -> ModelError:
        return ModelError(f"{path}: {what}; {SUMMARY}")

    form = metadata.get(IO, "rgb")
    if form not in FORMS:
        raise refuse(f"metadata {IO}={form!r} is not one of {', '.join(FORMS)}")
    multiple = _positive(metadata, SIZE_MULTIPLE, refuse)
    block = _positive(metadata, LUMA8_BLOCK, refuse) if form == "luma8" else 1
    if multiple % block:
        raise refuse(f"metadata {SIZE_MULTIPLE}={multiple} is not a multiple of {LUMA8_BLOCK}={block}")
    spec = FORMS[form]
    channels = spec.channels * block * block
    declared = "" if form == "rgb" else f", {IO}={form}"
    if block > 1:
        declared += f" in {block}x{block} blocks"
    if len(inputs) != 1 or inputs[0].name != "input":
        names = ", ".join(repr(i.name) for i in inputs)
        raise refuse(f"model inputs are {names}, expected exactly one named 'input'")
    x, y = inputs[0], outputs[0]
    for tensor, role in ((x, "input"), (y, "output")):
        if tensor.type != spec.dtype:
            raise refuse(f"{role} {tensor.name!r} is {tensor.type}, expected {spec.dtype} ({spec.content}{declared})")
        if len(tensor.shape) != 4:
            raise refuse(f"{role} {tensor.name!r} has shape {tensor.shape}, expected [1,{channels},H,W]")
        if isinstance(tensor.shape[1], int) and tensor.shape[1] != channels:
            raise refuse(
                f"{role} {tensor.name!r} has {tensor.shape[1]} channels, expected {channels} ({spec.content}{declared})"
            )
    if isinstance(x.shape[2], int) or isinstance(x.shape[3], int):
        raise refuse(
            f"input 'input' has a fixed size {x.shape[2]}x{x.shape[3]}, expected dynamic H and W "
            "(export with dynamic axes)"
        )
    return Contract(form, multiple, block, y.name)


def _positive(metadata: dict[str, str], key: str, refuse: Any) -> int:
    """A metadata integer; absent means 1. A present but unusable value is a broken model, not
    something to guess around."""
    raw = metadata.get(key, "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise refuse(f"metadata {key}={raw!r} is not a positive integer")
    return value
