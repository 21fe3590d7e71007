"""`python -m vcam` is the `vcam` command (for environments without the console script)."""

from vcam.cli import app

app(prog_name="vcam")
