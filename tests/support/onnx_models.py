"""Tiny ONNX models, built with `onnx.helper`, that follow or deliberately break the contract.

The runtime is tested on real ONNX Runtime sessions, so tests need real models; these are a few
hundred bytes each and are written into `tmp_path`. Contract: input `input` float32 [1,3,H,W]
RGB in [0,1], output [1,3,H,W] RGB in [0,1], dynamic H/W, metadata `vcam.size_multiple`; or,
with metadata `vcam.io=luma8`, uint8 [1,1,H,W] luma in and luma residual + 128 out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
DYNAMIC = [1, 3, "H", "W"]
LUMA = [1, 1, "H", "W"]
LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)


def _save(
    path: str | Path, nodes: list, inputs: list, outputs: list, initializers: list, metadata: dict[str, str]
) -> Path:
    graph = helper.make_graph(nodes, "vcam_test", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vcam-tests")
    model.ir_version = 8  # readable by every onnxruntime the package supports
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path


def _metadata(size_multiple: int | str | None, name: str, extra: dict[str, str] | None) -> dict:
    meta = {
        "vcam.name": name,
        "vcam.version": "0.0.1",
        "vcam.architecture": "test",
        "vcam.training": "none (built by tests/onnx_models.py)",
    }
    if size_multiple is not None:
        meta["vcam.size_multiple"] = str(size_multiple)
    meta.update(extra or {})
    return meta


def make_identity_model(
    path: str | Path, size_multiple: int | str | None = 1, metadata: dict[str, str] | None = None
) -> Path:
    """Output == input: lets tests check that pre/post-processing is lossless."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    node = helper.make_node("Identity", ["input"], ["output"])
    return _save(path, [node], [x], [y], [], _metadata(size_multiple, "identity", metadata))


def make_sharpen_model(
    path: str | Path, size_multiple: int = 4, amount: float = 1.0, metadata: dict[str, str] | None = None
) -> Path:
    """A fixed per-channel 3x3 Laplacian sharpen, clipped to [0,1]: raises edge energy."""
    k = LAPLACIAN * amount
    k[1, 1] += 1.0
    weight = numpy_helper.from_array(np.tile(k, (3, 1, 1, 1)).astype(np.float32), "weight")
    lo = numpy_helper.from_array(np.array(0.0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(1.0, np.float32), "hi")
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    nodes = [
        helper.make_node("Conv", ["input", "weight"], ["conv"], group=3, pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["conv", "lo", "hi"], ["output"]),
    ]
    return _save(path, nodes, [x], [y], [weight, lo, hi], _metadata(size_multiple, "laplacian-sharpen", metadata))


def make_wrong_input_name_model(path: str | Path) -> Path:
    """Input called `image` instead of `input`."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    node = helper.make_node("Identity", ["image"], ["output"])
    return _save(path, [node], [x], [y], [], _metadata(1, "wrong-name", None))


def make_wrong_rank_model(path: str | Path) -> Path:
    """Input [3,H,W] (no batch axis)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [3, "H", "W"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    node = helper.make_node("Unsqueeze", ["input", "axes"], ["output"])
    return _save(path, [node], [x], [y], [axes], _metadata(1, "wrong-rank", None))


def make_int_input_model(path: str | Path) -> Path:
    """Input uint8 instead of float32."""
    x = helper.make_tensor_value_info("input", TensorProto.UINT8, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    node = helper.make_node("Cast", ["input"], ["output"], to=TensorProto.FLOAT)
    return _save(path, [node], [x], [y], [], _metadata(1, "int-input", None))


def make_wrong_channels_model(path: str | Path) -> Path:
    """Input [1,4,H,W]: RGBA instead of RGB."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, "H", "W"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, "H", "W"])
    node = helper.make_node("Identity", ["input"], ["output"])
    return _save(path, [node], [x], [y], [], _metadata(1, "wrong-channels", None))


def make_static_shape_model(path: str | Path, height: int = 64, width: int = 64) -> Path:
    """Input fixed to [1,3,64,64]: would only accept one frame size."""
    shape = [1, 3, height, width]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    node = helper.make_node("Identity", ["input"], ["output"])
    return _save(path, [node], [x], [y], [], _metadata(1, "static", None))


def make_wrong_output_rank_model(path: str | Path) -> Path:
    """Output [3,H,W]: batch axis squeezed away."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [3, "H", "W"])
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    node = helper.make_node("Squeeze", ["input", "axes"], ["output"])
    return _save(path, [node], [x], [y], [axes], _metadata(1, "wrong-output-rank", None))


def make_bad_size_multiple_model(path: str | Path, value: str = "four") -> Path:
    """A contract-following graph whose `vcam.size_multiple` is not a positive integer."""
    return make_identity_model(path, size_multiple=value)


def make_channel_gain_model(
    path: str | Path, gains: tuple[float, float, float] = (1.0, 0.0, 0.0), size_multiple: int = 1
) -> Path:
    """Multiplies each RGB channel by a constant: (1,0,0) keeps red only, which pins down the
    BGR <-> RGB order of the runtime's pre/post-processing."""
    gain = numpy_helper.from_array(np.array(gains, np.float32).reshape(1, 3, 1, 1), "gain")
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    node = helper.make_node("Mul", ["input", "gain"], ["output"])
    return _save(path, [node], [x], [y], [gain], _metadata(size_multiple, "channel-gain", None))


def make_downscale_model(path: str | Path) -> Path:
    """Passes the load-time checks (dynamic shapes) but halves H and W when run."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "H2", "W2"])
    node = helper.make_node("AveragePool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])
    return _save(path, [node], [x], [y], [], _metadata(2, "downscale", None))


def make_reciprocal_model(path: str | Path) -> Path:
    """Output 1/input: +inf where a pixel is black, >= 1 (white once saturated) elsewhere; a
    model that emits non-finite values must not spoil the rest of the frame."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, DYNAMIC)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, DYNAMIC)
    node = helper.make_node("Reciprocal", ["input"], ["output"])
    return _save(path, [node], [x], [y], [], _metadata(1, "reciprocal", None))


def make_luma8_model(path: str | Path, amount: float = 1.0, size_multiple: int = 1, block: int = 1) -> Path:
    """The luma8 form: residual = amount x 3x3 Laplacian of the luma, stored as uint8 + 128
    (QuantizeLinear rounds and saturates, as the shipped student's last node does). With
    `block` > 1 its tensors are packed in block x block pixels (vcam.luma8_block): the model
    unpacks with DepthToSpace and packs its residual with SpaceToDepth, so it computes exactly
    what the unpacked model does."""
    weight = numpy_helper.from_array((LAPLACIAN * amount).reshape(1, 1, 3, 3), "weight")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    mid = numpy_helper.from_array(np.array(128, np.uint8), "mid")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    packed = [1, block * block, "h", "w"]
    x = helper.make_tensor_value_info("input", TensorProto.UINT8, packed if block > 1 else LUMA)
    y = helper.make_tensor_value_info("output", TensorProto.UINT8, packed if block > 1 else LUMA)
    nodes = [
        helper.make_node("Cast", ["luma8"], ["luma"], to=TensorProto.FLOAT),
        helper.make_node("Pad", ["luma", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Conv", ["padded", "weight"], ["residual"]),
        helper.make_node("QuantizeLinear", ["residual", "one", "mid"], ["residual8"]),
    ]
    extra = {"vcam.io": "luma8"}
    if block > 1:
        nodes.insert(0, helper.make_node("DepthToSpace", ["input"], ["luma8"], blocksize=block))
        nodes.append(helper.make_node("SpaceToDepth", ["residual8"], ["output"], blocksize=block))
        extra["vcam.luma8_block"] = str(block)
    else:
        nodes[0].input[0] = "input"
        nodes[-1].output[0] = "output"
    return _save(path, nodes, [x], [y], [weight, one, mid, pads], _metadata(size_multiple, "luma8-laplacian", extra))


def make_float_luma8_model(path: str | Path) -> Path:
    """Declares vcam.io=luma8 but keeps the rgb form's float32 tensors."""
    return make_identity_model(path, metadata={"vcam.io": "luma8"})


def make_unknown_io_model(path: str | Path) -> Path:
    """Declares a model form the runtime does not know."""
    return make_identity_model(path, metadata={"vcam.io": "yuv"})
