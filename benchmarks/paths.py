"""Where the benchmark scripts find the repository and the shared data set: resolved from this
file, so a script gives the same answer from any working directory."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # ../shared/data beside the clone (../shared/data/README.md)
