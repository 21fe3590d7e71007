"""Export a checkpoint as a SharpCam model (the contract: vcam/contract.py), check its parity
with PyTorch, and quantise a student to INT8.

A student's INT8 model takes the contract's luma8 form: quantising the RGB graph instead would
leave ONNX Runtime converting and quantising 3-channel float frames at full resolution, a large
part of its time. Static quantisation is calibrated on real degraded images, because a
restoration net's activation ranges depend on the noise and blur it sees, and keeps the weights
to 7 bits so that every x86 kernel computes the same integers (`int16_overflows`).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from distill.curves import read_metrics
from distill.models import SelfEnsemble, Student, describe
from distill.train import AVERAGED_KEY, TrainingError, load_checkpoint, model_from_checkpoint
from vcam import contract

OPSET = 17
FACT_PREFIX = "vcam."  # facts for people reading the model: vcam.architecture, vcam.training, ...
# What the export writes itself, which facts may not replace: the contract's keys and the network.
OWN_KEYS = {
    contract.IO,
    contract.SIZE_MULTIPLE,
    contract.LUMA8_BLOCK,
    contract.NAME,
    contract.VERSION,
    contract.QUANTIZATION,
    FACT_PREFIX + "architecture",
    FACT_PREFIX + "params",
    FACT_PREFIX + "self_ensemble",
}


class _Contract(nn.Module):
    """Clamps to the [0,1] output range the contract promises."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).clamp(0, 1)


def _pixel_unshuffle_symbolic(g: Any, x: torch.Value, factor: torch.Value) -> torch.Value:
    """The unshuffle of one channel as a single SpaceToDepth node, where PyTorch's exporter
    writes a slower 6-D Reshape/Transpose; for one channel the two orderings are identical."""
    from torch.onnx import symbolic_helper, symbolic_opset9

    if (symbolic_helper._get_tensor_sizes(x) or [None, None])[1] == 1:
        return g.op("SpaceToDepth", x, blocksize_i=symbolic_helper._get_const(factor, "i", "factor"))
    return symbolic_opset9.pixel_unshuffle(g, x, factor)


class _LumaResidual(nn.Module):
    """The student without its RGB ends: luma [1,1,H,W] → luma residual (the luma8 form)."""

    def __init__(self, net: Student) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = net.cfg.size_multiple

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net.luma_residual(y)[0]


def unshuffled_conv(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The 3×3 convolution at 1/r of `conv`'s resolution that computes
    pixel_unshuffle(conv(x), r) from pixel_unshuffle(x, r): the same sums, some of them with
    zero weights. ONNX Runtime's INT8 kernels run narrow layers at large sizes far below their
    speed on wide layers at small ones, so the rewrite buys time at an equal count of nonzero
    weights; each output channel keeps its weights' largest magnitude, so it quantises alike.
    Any 'same' kernel up to (2r+1)×(2r+1) reaches no further than the neighbouring blocks, so
    at r = 2 a 5×5 becomes the same 3×3 as a 3×3 does, with fewer zeros."""
    k = conv.kernel_size[0]
    half = k // 2
    if (
        conv.kernel_size != (k, k)
        or k % 2 == 0
        or half > r
        or conv.padding != (half, half)
        or conv.stride != (1, 1)
        or conv.groups != 1
        or conv.dilation != (1, 1)
        or conv.padding_mode != "zeros"
    ):
        raise ValueError(f"only stride-1 'same' convolutions up to {2 * r + 1}×{2 * r + 1} can be rewritten")
    w = conv.weight.detach()
    cout, cin = w.shape[:2]
    wide = torch.zeros(cout * r * r, cin * r * r, 3, 3, dtype=w.dtype)
    for a in range(r):  # output sub-position (a, b) in its r × r block
        for b in range(r):
            for u in range(r):  # input sub-position (u, v)
                for v in range(r):
                    for by in (-1, 0, 1):  # input block offset
                        for bx in (-1, 0, 1):
                            dy, dx = by * r + u - a, bx * r + v - b  # offset at full resolution
                            if abs(dy) <= half and abs(dx) <= half:
                                wide[a * r + b :: r * r, u * r + v :: r * r, by + 1, bx + 1] = w[
                                    :, :, dy + half, dx + half
                                ]
    out = nn.Conv2d(cin * r * r, cout * r * r, 3, padding=1, bias=conv.bias is not None)
    out.weight.data.copy_(wide)
    if conv.bias is not None:
        out.bias.data.copy_(conv.bias.detach().repeat_interleave(r * r))
    return out


def _unshuffle_order(r: int) -> torch.Tensor:
    """Channel i of pixel_unshuffle(y, 2r) is channel order[i] of pixel_unshuffle(pixel_unshuffle(y, 2), r)."""
    y = torch.arange(4 * r * r, dtype=torch.float32).view(1, 1, 2 * r, 2 * r)
    twice = F.pixel_unshuffle(F.pixel_unshuffle(y, 2), r).flatten()
    once = F.pixel_unshuffle(y, 2 * r).flatten()
    return torch.tensor([int((twice == value).nonzero()) for value in once])


class _QuarterResolution(nn.Module):
    """A bodyless half-resolution student rewritten to run at 1/4 resolution (`unshuffled_conv`),
    luma packed in 4×4 blocks at both ends like the 1/4-resolution students: the same function,
    in about three quarters of the time in ONNX Runtime's INT8 kernels."""

    size_multiple = 4

    def __init__(self, net: Student) -> None:
        super().__init__()
        order = _unshuffle_order(2)
        self.head = unshuffled_conv(net.head, 2)
        self.head.weight.data = self.head.weight.data[:, order]  # its input: the luma in 4×4 blocks
        self.tail = unshuffled_conv(net.tail, 2)
        self.tail.weight.data = self.tail.weight.data[order]  # its output: the residual in 4×4 blocks
        self.tail.bias.data = self.tail.bias.data[order]
        self.context = net.context  # its input, the features in 2×2 blocks, is the head's output here

    @staticmethod
    def fits(net: Student) -> bool:
        # Four times the MACs at 3×3 (1.44× at 5×5): the faster kernels win at 16 channels or fewer, while at 24 and
        # 32 the two forms timed alike (benchmarks/student_arch_b0.md), so those stay plain.
        return net.cfg.scale == 2 and net.cfg.blocks == 0 and net.cfg.channels <= 16

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.head(F.pixel_unshuffle(y, 4)))
        if self.context is not None:
            h = self.context.packed(h)
        return F.pixel_shuffle(self.tail(h), 4)


def luma_residual_module(net: Student) -> nn.Module:
    """What the INT8 export quantises: the student's luma path, at 1/4 resolution where it can be."""
    return _QuarterResolution(net) if _QuarterResolution.fits(net) else _LumaResidual(net)


def _torch_export(module: nn.Module, example: torch.Tensor, path: str | Path) -> None:
    # The TorchScript exporter (deprecated, still supported) is the one that takes a custom
    # symbolic, which is how the unshuffle becomes one SpaceToDepth node.
    torch.onnx.register_custom_op_symbolic("aten::pixel_unshuffle", _pixel_unshuffle_symbolic, OPSET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module.eval(),
                example,
                str(path),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}},
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::pixel_unshuffle", OPSET)


def onnx_session(path: str | Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_facts(checkpoint: str | Path) -> dict[str, Any]:
    """What the checkpoint knows of its training run, for the model's metadata: the training
    settings and steps from the checkpoint itself, and the run's last validation score at or
    before the checkpoint's step from the metrics.jsonl beside it (a best.pt's own score, not
    that of the steps the run went on to; absent for a weights-only copy)."""
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.get("config") or {}
    distilled = bool(cfg.get("teacher"))
    keys = ("train_dir", "mix", "batch", "crop", "pool", "lr") + (("w_gt", "w_kd", "w_feat") if distilled else ())
    training = {k: cfg[k] for k in keys if k in cfg} | {"steps": ckpt.get("step"), "teacher": distilled}
    if ckpt.get("elapsed"):
        training["minutes"] = round(ckpt["elapsed"] / 60, 1)
    if ckpt.get("qat"):
        training["qat"] = ckpt["qat"]
    facts: dict[str, Any] = {"training": training}
    metrics = Path(checkpoint).parent / "metrics.jsonl"
    if metrics.is_file():
        step = ckpt.get("step") or math.inf
        scores = [row for row in read_metrics(metrics) if "val_psnr" in row and row["step"] <= step]
        if scores:
            last = scores[-1]
            facts["validation"] = {
                "set": cfg.get("val_dir"),
                "psnr": round(last["val_psnr"], 3),
                "input_psnr": round(last["input_psnr"], 3),
                "step": last["step"],
            }
    return facts


def export_onnx(
    checkpoint: str | Path,
    path: str | Path,
    name: str,
    version: int,
    facts: dict[str, Any] | None = None,
    averaged: bool = True,
    self_ensemble: bool = False,
) -> dict[str, float]:
    """Write the checkpoint's network (re-parameterised; its averaged weights unless `averaged`
    is False; a teacher's mean over 8 views with `self_ensemble`) as a contract ONNX model named
    `name`, version `version`, and return {'max_abs_diff': …} from a PyTorch-vs-ONNX Runtime parity
    check on two odd sizes. Its facts: the architecture, `run_facts(checkpoint)` and `facts` (which
    win over the run's)."""
    clash = sorted(k for k in facts or {} if FACT_PREFIX + k in OWN_KEYS)
    if clash:
        raise TrainingError(
            f"facts may not set {', '.join(clash)}: "
            "the export writes it itself (name and version have options of their own)"
        )
    facts = run_facts(checkpoint) | (facts or {})
    model = model_from_checkpoint(checkpoint, averaged)
    if isinstance(model, Student):
        if self_ensemble:
            raise TrainingError(
                "a self-ensemble runs the network 8 times; it is for the offline teacher, not a student"
            )
        model.fold()
    wrapped = _Contract(SelfEnsemble(model) if self_ensemble else model).eval()
    _torch_export(wrapped, torch.rand(1, 3, 64, 64), path)
    m = model.cfg.size_multiple
    own = {"architecture": describe(model), "params": sum(p.numel() for p in model.parameters())}
    if self_ensemble:
        own["self_ensemble"] = SelfEnsemble.VIEWS
    meta = {
        contract.SIZE_MULTIPLE: str(m),
        contract.NAME: name,
        contract.VERSION: str(version),
        **{FACT_PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in (own | facts).items()},
    }
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return {"max_abs_diff": parity(wrapped, path, m)}


def slim_checkpoint(checkpoint: str | Path, path: str | Path, averaged: bool = True) -> None:
    """Keep only what inference and distillation need: the architecture and one set of weights
    (the averaged ones unless `averaged` is False), without the second set and the adapter that
    only resuming uses. The result loads wherever a checkpoint is accepted (`--teacher`, `--init`,
    `distill export`, `distill qat`)."""
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint, averaged)
    torch.save(
        {
            "arch": ckpt["arch"],
            "model": model.state_dict(),
            AVERAGED_KEY: None,
            "config": ckpt.get("config"),
            "step": ckpt.get("step"),
            "qat": ckpt.get("qat"),
        },
        path,
    )


@torch.no_grad()
def parity(model: nn.Module, path: str | Path, size_multiple: int) -> float:
    """Max |PyTorch − ONNX Runtime| over random inputs of two sizes (multiples of the model's)."""
    session = onnx_session(path)
    worst = 0.0
    for h, w in [(3 * size_multiple * 4, 5 * size_multiple * 4), (size_multiple * 9, size_multiple * 7)]:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        diff = np.abs(model(x).numpy() - session.run(None, {"input": x.numpy()})[0]).max()
        worst = max(worst, float(diff))
    return worst


def quantize_luma8(
    checkpoint: str | Path,
    fp32_path: str | Path,
    int8_path: str | Path,
    calibration: list[np.ndarray],
    averaged: bool = True,
) -> None:
    """Write a student as a static INT8 model in the luma8 form, calibrated on uint8 BGR images;
    its metadata is `fp32_path`'s (the same network's contract export) plus the luma8 keys."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = model_from_checkpoint(checkpoint, averaged)
    if not isinstance(model, Student):
        raise TrainingError(f"{checkpoint} holds a teacher; INT8 (luma8) export is for students")
    model.fold()
    luma = luma_residual_module(model)
    m = luma.size_multiple
    int8_path = Path(int8_path)
    core, pre = int8_path.with_suffix(".core.onnx"), int8_path.with_suffix(".pre.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            img = next(self.items, None)
            if img is None:
                return None
            h, w = img.shape[0] // m * m, img.shape[1] // m * m
            return {"input": cv2.cvtColor(img[:h, :w], cv2.COLOR_BGR2GRAY)[None, None] / np.float32(255)}

    # The ends' scales are one level (1/255), so that the graph's ends are the uint8 tensors
    # themselves and the pixel (un)shuffles there can be left to the runtime (_packed_uint8_ends).
    level = {"scale": np.array(1 / 255, np.float32)}
    try:
        _torch_export(luma, torch.rand(1, 1, 64, 64), core)
        graph = onnx.load(str(core)).graph
        unshuffled = _packing(graph, "SpaceToDepth").output[0]
        residual = _packing(graph, "DepthToSpace").input[0]
        quant_pre_process(str(core), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "TensorQuantOverrides": {
                    unshuffled: [level | {"zero_point": np.array(0, np.uint8)}],
                    residual: [level | {"zero_point": np.array(128, np.uint8)}],
                }
            },
        )
    finally:
        core.unlink(missing_ok=True)
        pre.unlink(missing_ok=True)
    int8 = onnx.load(str(int8_path))
    block = _packed_uint8_ends(int8.graph, unshuffled)
    _widen_last_conv(int8.graph)
    # The quantiser stamps every domain it knows (ai.onnx.ml 5, ...); older ONNX Runtimes refuse
    # to load opsets newer than theirs even when no node uses them, so keep the used ones only.
    used = {node.domain for node in int8.graph.node}
    kept = [o for o in int8.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del int8.opset_import[:]
    int8.opset_import.extend(kept)
    fp32 = onnx.load(str(fp32_path))
    onnx.helper.set_model_props(
        int8,
        {p.key: p.value for p in fp32.metadata_props}
        | {
            contract.IO: "luma8",
            contract.SIZE_MULTIPLE: str(m),
            contract.LUMA8_BLOCK: str(block),
            contract.QUANTIZATION: "int8-qdq-per-channel-7bit",
        },
    )
    onnx.checker.check_model(int8)
    problems = int16_overflows(int8)
    if problems:
        raise TrainingError(f"the INT8 model would compute differently on AVX2 CPUs ({problems[0]}); not written")
    onnx.save(int8, str(int8_path))


INT16_MAX = 32767


def int16_overflows(model: onnx.ModelProto) -> list[str]:
    """Convolutions of an INT8 graph in which two adjacent activation x weight products could
    add up beyond int16, one line each. AVX2's U8S8 kernel (vpmaddubsw) adds the products in
    pairs with int16 saturation, VNNI accumulates in int32: such a model computes another picture
    on AVX2 than on newer CPUs. Checked from the weights alone, so any machine catches it."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}

    def quantized(name: str) -> tuple[str, str] | None:
        """(quantised tensor, zero point) behind a DequantizeLinear output."""
        node = producer.get(name)
        return (node.input[0], node.input[2]) if node is not None and node.op_type == "DequantizeLinear" else None

    problems = []
    for node in model.graph.node:
        if node.op_type == "QLinearConv":
            weights, activation_zero_point = node.input[3], node.input[2]
        elif node.op_type == "Conv":
            w_q, x_q = quantized(node.input[1]), quantized(node.input[0])
            if w_q is None or x_q is None:
                continue
            weights, activation_zero_point = w_q[0], x_q[1]
        else:
            continue
        if weights not in inits or activation_zero_point not in inits:
            continue
        w = numpy_helper.to_array(inits[weights])
        if w.dtype != np.int8:
            continue  # uint8 weights take the exact U8U8 kernel
        activation_max = 255 if numpy_helper.to_array(inits[activation_zero_point]).dtype == np.uint8 else 128
        top2 = np.sort(np.abs(w.reshape(w.shape[0], -1).astype(np.int32)), axis=1)[:, -2:].sum(axis=1)
        worst = int(top2.max()) * activation_max
        if worst > INT16_MAX:
            problems.append(f"{node.name or weights}: {activation_max} x {int(top2.max())} = {worst} > {INT16_MAX}")
    return problems


# ONNX Runtime's INT8 convolution runs a layer with fewer output channels than this at a
# fraction of its speed: a 4-channel tail took longer than a 16-channel layer of four times the MACs.
MIN_CONV_OUTPUTS = 16


def _widen_last_conv(graph: onnx.GraphProto) -> None:
    """Give the convolution that writes the graph's output MIN_CONV_OUTPUTS channels, the extra
    ones zero filters, and slice the real ones out of its uint8 result: the same integers,
    sooner (a half-resolution student's 4-channel tail). Expects the quantiser's QDQ graph."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    quantize = producer[graph.output[0].name]
    conv = producer[quantize.input[0]]
    weight_dq, bias_dq = producer[conv.input[1]], producer[conv.input[2]]
    weights = numpy_helper.to_array(inits[weight_dq.input[0]])
    channels = weights.shape[0]
    if channels >= MIN_CONV_OUTPUTS:
        return

    def pad(name: str, like_first: bool = False) -> None:
        """Extend a per-output-channel tensor (its first axis) to MIN_CONV_OUTPUTS with zeros, or
        with copies of its first channel (scales: ONNX Runtime fuses the convolution only while
        each bias scale is the input scale times the weight scale)."""
        a = numpy_helper.to_array(inits[name])
        extra = np.repeat(a[:1], MIN_CONV_OUTPUTS - channels, axis=0)
        inits[name].CopyFrom(numpy_helper.from_array(np.concatenate([a, extra if like_first else 0 * extra]), name))

    pad(weight_dq.input[0])  # zero filters: the extra channels never touch the real ones
    pad(bias_dq.input[0])
    for dq in (weight_dq, bias_dq):
        pad(dq.input[1], like_first=True)
        if len(dq.input) > 2 and dq.input[2]:
            pad(dq.input[2])
    wide = quantize.output[0] + "_wide"
    quantize.output[0] = wide
    starts, ends, axes = (
        numpy_helper.from_array(np.array([v], np.int64), f"{wide}_{k}")
        for k, v in (("starts", 0), ("ends", channels), ("axes", 1))
    )
    graph.initializer.extend([starts, ends, axes])
    graph.node.append(onnx.helper.make_node("Slice", [wide, starts.name, ends.name, axes.name], [graph.output[0].name]))


def _packing(graph: onnx.GraphProto, op: str) -> onnx.NodeProto:
    """The SpaceToDepth that packs the graph's input or the DepthToSpace that unpacks its output
    (a context branch packs and unpacks features in between)."""
    if op == "SpaceToDepth":
        return next(n for n in graph.node if n.op_type == op and n.input[0] == graph.input[0].name)
    return next(n for n in graph.node if n.op_type == op and n.output[0] == graph.output[0].name)


def _packed_uint8_ends(graph: onnx.GraphProto, unshuffled: str) -> int:
    """Cut the graph down to its packed uint8 core and return the block size b.

    The Quantize after SpaceToDepth and the Dequantize before DepthToSpace go (their scales are
    one level), and so do SpaceToDepth and DepthToSpace themselves: the graph then reads the
    luma packed in b x b blocks, [1, b*b, H/b, W/b] uint8, and writes the residual the same way
    (`vcam.luma8_block`), because the runtime packs with OpenCV faster than ONNX Runtime runs
    its uint8 SpaceToDepth and DepthToSpace."""
    unshuffle = _packing(graph, "SpaceToDepth")
    quantize = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == unshuffled)
    shuffle = _packing(graph, "DepthToSpace")
    dequantize = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] == shuffle.input[0])
    quantized_residual = dequantize.input[0]
    for node in graph.node:
        node.input[:] = [graph.input[0].name if x == quantize.output[0] else x for x in node.input]
        node.output[:] = [graph.output[0].name if x == quantized_residual else x for x in node.output]
    for node in (unshuffle, quantize, dequantize, shuffle):
        graph.node.remove(node)
    block = next(a.i for a in unshuffle.attribute if a.name == "blocksize")
    for tensor in (graph.input[0], graph.output[0]):
        tensor.type.CopyFrom(onnx.helper.make_tensor_type_proto(onnx.TensorProto.UINT8, [1, block * block, "h", "w"]))
    del graph.value_info[:]
    return block
