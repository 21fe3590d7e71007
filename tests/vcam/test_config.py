"""The config file: precedence command line > file > defaults, and one-line errors that name the
key and the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vcam import config
from vcam.cli import app
from vcam.errors import VcamError
from vcam.options import DEFAULTS

runner = CliRunner()


def user_config(text: str) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "sharpcam" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _no_user_config():
    yield
    (Path(os.environ["XDG_CONFIG_HOME"]) / "sharpcam" / "config.toml").unlink(missing_ok=True)


def test_command_line_beats_file_beats_default() -> None:
    path = user_config('strength = 0.6\nema = 0.5\nsink = "null"\nwidth = 640\n')
    options, origin = config.merge({"ema": 0.2, "width": DEFAULTS.width}, {"ema"})
    assert (options.ema, origin["ema"]) == (0.2, "command line")
    assert (options.strength, origin["strength"]) == (0.6, str(path))
    assert (options.width, origin["width"]) == (640, str(path))  # not typed: the file's value
    assert (options.fps, origin["fps"]) == (DEFAULTS.fps, "default")


def test_config_show_prints_each_value_and_where_it_came_from() -> None:
    path = user_config("fps = 15\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert f"fps = 15    # {path}" in result.stdout
    assert "strength = 1.0    # default" in result.stdout


def test_start_runs_with_the_files_values(clip: Path, identity_model: Path) -> None:
    user_config(f'sink = "null"\nframes = 3\nmodel = "{identity_model}"\n')
    result = runner.invoke(app, ["start", "--source", str(clip)])
    assert result.exit_code == 0, result.output
    assert "stopped after 3 frames" in result.stderr


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("strenght = 0.6\n", ["unknown key 'strenght'", "strength"]),
        ('strength = "high"\n', ["strength = 'high' is not a number"]),
        ("overwrite = 1\n", ["overwrite = 1 is not true or false"]),
        ("width = 1.5\n", ["width = 1.5 is not an integer"]),
        ("strength = [\n", ["is not valid TOML"]),
        ("strength = 3\n", ["strength must be between 0 and 1 (got 3)"]),
        ('provider = "warp"\n', ["unknown provider 'warp'"]),
    ],
)
def test_a_bad_file_is_one_line_naming_key_and_file(clip: Path, text: str, fragments: list[str]) -> None:
    path = user_config(text)
    result = runner.invoke(app, ["start", "--source", str(clip), "--sink", "null", "--frames", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(VcamError, match="config file .* not found"):
        config.read(tmp_path / "nope.toml")
    assert config.read() == {}  # the default file may be absent


def test_a_bad_command_line_value_names_its_flag(clip: Path) -> None:
    result = runner.invoke(app, ["start", "--source", str(clip), "--ema", "1.5"])
    assert result.exit_code == 2 and result.stderr.strip() == "error: ema must be between 0 and 1 (got 1.5) [--ema]"
