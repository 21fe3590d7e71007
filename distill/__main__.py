"""The `distill` command (`python -m distill` and the console script).

`pip install sharpcam` installs the command without the training extra it runs on; then it says
in one line how to install that extra instead of failing inside an import.
"""

import importlib.util
import sys

import vcam  # noqa: F401 — before onnxruntime is imported: keeps its telemetry off (vcam/__init__.py)

# What the `train` extra of pyproject.toml installs, by import name.
TRAIN_EXTRA = ("torch", "onnx", "onnxscript", "matplotlib", "tqdm")


def main() -> None:
    if any(importlib.util.find_spec(module) is None for module in TRAIN_EXTRA):
        print(
            "error: distill needs the training extra: pip install torch==2.13.0 (the CPU build), "
            "then pip install 'sharpcam[train]'",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from distill.cli import app

    app(prog_name="distill")


if __name__ == "__main__":
    main()
