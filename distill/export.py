"""Export a checkpoint to the public SharpCam ONNX contract, check parity, quantise to INT8.

Contract: input `input` float32 [1,3,H,W] RGB in [0,1] → output `output` [1,3,H,W] RGB in
[0,1], dynamic H and W, metadata `vcam.size_multiple` plus name/version/architecture/training
and validation facts (JSON strings).

The student's pixel-unshuffle of its one luma channel is exported as a single SpaceToDepth node
(PyTorch's exporter would write a 6-D Reshape/Transpose, ~2 ms slower per 720p frame); for one
channel the two orderings are identical. Static INT8 quantisation (QDQ, per-channel weights) is
calibrated on real degraded images, because activation ranges of restoration nets depend on the
noise and blur they see.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from distill.data import to_tensor_batch
from distill.models import Student, describe
from distill.train import load_checkpoint, model_from_checkpoint

OPSET = 17


class _Contract(nn.Module):
    """Clamps to the [0,1] output range the contract promises."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).clamp(0, 1)


def _pixel_unshuffle_symbolic(g, x, factor):
    from torch.onnx import symbolic_helper, symbolic_opset9

    if (symbolic_helper._get_tensor_sizes(x) or [None, None])[1] == 1:
        return g.op("SpaceToDepth", x, blocksize_i=symbolic_helper._get_const(factor, "i", "factor"))
    return symbolic_opset9.pixel_unshuffle(g, x, factor)


def onnx_session(path: str | Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, img: np.ndarray, size_multiple: int) -> np.ndarray:
    """One uint8 BGR image of any size through a contract model (reflect-padded, cropped back)."""
    h, w = img.shape[:2]
    x = to_tensor_batch(img[None]).numpy()
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % size_multiple), (0, -w % size_multiple)), mode="reflect")
    y = session.run(None, {"input": x})[0][0, :, :h, :w]
    return (y.transpose(1, 2, 0)[..., ::-1] * 255 + 0.5).astype(np.uint8)


def export_onnx(checkpoint: str | Path, path: str | Path, name: str, facts: dict | None = None,
                use_ema: bool = True) -> dict:
    """Write the checkpoint's network (EMA weights unless `use_ema` is False, re-parameterised) as
    a contract ONNX model and return {'max_abs_diff': …} from a PyTorch-vs-ONNX Runtime parity
    check on two odd sizes."""
    model = model_from_checkpoint(checkpoint, use_ema)
    if isinstance(model, Student):
        model.fold()
    wrapped = _Contract(model).eval()
    # The TorchScript exporter (deprecated, still supported) is the one that takes a custom
    # symbolic, which is how the unshuffle becomes one SpaceToDepth node.
    torch.onnx.register_custom_op_symbolic("aten::pixel_unshuffle", _pixel_unshuffle_symbolic, OPSET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                wrapped, torch.rand(1, 3, 64, 64), str(path), input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}},
                opset_version=OPSET, dynamo=False,
            )
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::pixel_unshuffle", OPSET)
    m = model.cfg.size_multiple
    arch = describe(model)
    meta = {
        "vcam.size_multiple": str(m),
        "vcam.name": name,
        "vcam.version": "1",
        "vcam.architecture": json.dumps(arch),
        "vcam.params": str(sum(p.numel() for p in model.parameters())),
        **{f"vcam.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (facts or {}).items()},
    }
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return {"max_abs_diff": parity(wrapped, path, m)}


def slim_checkpoint(checkpoint: str | Path, path: str | Path, use_ema: bool = True) -> None:
    """Keep only what inference and distillation need (architecture + one set of weights, the
    EMA unless `use_ema` is False): a run's last.pt also holds optimiser state and both weight
    sets, ~4x the size, which only resuming uses. The result loads wherever a checkpoint is
    accepted (`--teacher`, `distill export`)."""
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint, use_ema)
    torch.save({"arch": ckpt["arch"], "model": model.state_dict(), "ema": None,
                "config": ckpt.get("config"), "step": ckpt.get("step")}, path)


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


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calibration: list[np.ndarray]) -> None:
    """Static QDQ INT8 (per-channel weights, uint8 activations), calibrated on uint8 BGR images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    m = int(onnx_session(fp32_path).get_modelmeta().custom_metadata_map["vcam.size_multiple"])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            img = next(self.items, None)
            if img is None:
                return None
            h, w = img.shape[0] // m * m, img.shape[1] // m * m
            return {"input": to_tensor_batch(img[None, :h, :w]).numpy()}

    pre = Path(int8_path).with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(pre), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
    finally:
        pre.unlink(missing_ok=True)
    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    onnx.helper.set_model_props(int8, {p.key: p.value for p in fp32.metadata_props} | {"vcam.quantization": "int8-qdq-per-channel"})
    onnx.save(int8, str(int8_path))
