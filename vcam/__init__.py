"""SharpCam's runtime: camera -> sharpener -> temporal filter -> virtual camera.

ONNX Runtime records telemetry events (a device id, the OS, the CPU) in the user's cache folder
unless it is told not to before it is imported. A camera tool must not report on its users, so
importing vcam turns that off; `ORT_DISABLE_TELEMETRY=0` in the environment turns it back on.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
