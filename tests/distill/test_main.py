import subprocess
import sys

import pytest


@pytest.mark.slow
def test_without_the_training_extra_the_command_says_how_to_install_it():
    """What `pip install sharpcam` without [train] leaves: the console script, but no torch."""
    unimportable = "import sys; sys.modules['torch'] = None; from distill.__main__ import main; main()"
    r = subprocess.run([sys.executable, "-c", unimportable, "train"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "error: distill needs the training extra: pip install torch==2.13.0 (the CPU build), "
        "then pip install 'sharpcam[train]'"
    ]
    assert r.stdout == ""
