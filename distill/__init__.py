"""SharpCam's training half: degradations, teacher, distillation, evaluation, export."""

import vcam  # noqa: F401 — before onnxruntime is imported: keeps its telemetry off (vcam/__init__.py)
