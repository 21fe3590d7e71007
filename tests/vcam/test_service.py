"""`vcam service`: the user unit it writes (checked by systemd's own verifier where installed) and
the systemctl calls it makes. This machine has no systemd user manager, so a recording
`systemctl` script stands in for it; without one, install says what to run instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vcam import service
from vcam.cli import app

runner = CliRunner()


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `systemctl` first on PATH that logs its arguments and succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\ncase "$2" in is-active) echo active;; is-enabled) echo enabled;; esac\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_install_writes_a_unit_that_runs_this_interpreter_and_enables_it(systemctl: Path, tmp_path: Path) -> None:
    config = tmp_path / "my config.toml"
    config.write_text("strength = 0.7\n")
    result = runner.invoke(app, ["service", "install", "--config", str(config)])
    assert result.exit_code == 0, result.output
    unit = service.unit_path()
    text = unit.read_text()
    assert f'ExecStart={sys.executable} -m vcam start --on-demand --config "{config}"' in text
    assert "Restart=on-failure" in text and "KillSignal=SIGTERM" in text
    assert systemctl.read_text().splitlines() == ["--user daemon-reload", "--user enable --now sharpcam.service"]
    assert "sudo tee /etc/modprobe.d/v4l2loopback.conf" in result.stdout
    assert runner.invoke(app, ["service", "status"]).stdout.strip().endswith(": active, enabled")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_passes_systemds_own_verifier(tmp_path: Path) -> None:
    unit = tmp_path / "sharpcam.service"
    unit.write_text(service.unit_text())
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_uninstall_disables_and_removes_the_unit(systemctl: Path) -> None:
    runner.invoke(app, ["service", "install", "--no-now"])
    result = runner.invoke(app, ["service", "uninstall"])
    assert result.exit_code == 0 and not service.unit_path().exists()
    assert "--user disable --now sharpcam.service" in systemctl.read_text().splitlines()
    assert "not installed" in runner.invoke(app, ["service", "status"]).stdout


def test_without_a_reachable_user_manager_install_says_what_to_run(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["service", "install"])
    assert result.exit_code == 0 and service.unit_path().exists()
    assert "Failed to connect to bus" in result.stderr and "systemctl --user enable --now" in result.stderr
    service.unit_path().unlink()
