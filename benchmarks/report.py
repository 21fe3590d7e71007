"""How a benchmark script leaves its result: benchmarks/NAME.json for machines, NAME.md for people."""

import json
from pathlib import Path


def write(stem: Path, data: dict, lines: list[str]) -> None:
    """`stem`.json and `stem`.md, and the Markdown on stdout."""
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
