"""A short soak in the suite: the live pipeline over many frames neither grows nor drops (the
full 10,000-frame soak is benchmarks/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcam.soak import run_soak


@pytest.mark.slow
def test_many_frames_through_the_live_pipeline_keep_memory_flat(make_clip, sharpen_model: Path) -> None:
    clip = make_clip(frames=8, fps=240.0, size=(160, 120))
    result = run_soak(clip, frames=1_500, window=300, warmup=200, model=str(sharpen_model), width=160, height=120)
    assert (result.width, result.height) == (160, 120) and result.model == "sharpen.onnx"
    assert result.rss_growth_mb < 5.0
    assert result.e2e_p95_first_ms > 0 and result.e2e_p95_last_ms > 0
