"""Errors a user can act on.

Every failure the user can fix (wrong path, missing device, broken model, bad option) is raised
as a `VcamError` whose str() is the complete one-line message *including the fix*; the CLI
prints it as `error: <message>` and exits 2, so no traceback ever reaches the user. Subclasses
only exist so callers and tests can tell the stage apart.
"""


class VcamError(Exception):
    """A user-facing failure; str() is one line that says what is wrong and how to fix it."""


class SourceError(VcamError):
    """The camera or video file cannot be opened or yields no frames."""


class ModelError(VcamError):
    """The ONNX model is missing, unreadable, breaks the public contract or cannot run."""


class DeviceError(VcamError):
    """The virtual camera device is missing, busy or died."""
