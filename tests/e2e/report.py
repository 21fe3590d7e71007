"""Host side, after the boot: prints each scenario's verdict from the share's results.json.

usage: python report.py SHARE      exit code 0 only if the guest announced its scenarios and
                                   every one of them passed
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(share: Path) -> int:
    try:
        results = json.loads((share / "results.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"e2e: FAIL: no scenario results from the guest ({exc})")
        return 1
    ok = True
    for name in results["scenarios"]:
        result = results["results"].get(name)
        if result is None:
            print(f"e2e: FAIL  {name}: not finished (guest stopped or timed out)")
            ok = False
            continue
        verdict = "PASS" if result["ok"] else "FAIL"
        print(f"e2e: {verdict}  {name} ({result['seconds']:.0f}s): {result['detail']}")
        ok &= result["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
