"""The `vcam` command (`python -m vcam` and the console script).

Ctrl+C while the command is still importing its libraries and building its command line (a
few hundred ms) would end in a traceback from inside them; until the CLI runs, it just ends the
process with status 130.
"""

import os
import signal


def main() -> None:
    interruptible = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not SIG_IGN (nohup, &)
    if interruptible:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    from typer.main import get_command

    from vcam.cli import app

    command = get_command(app)  # typer builds the command line from the functions: a moment too
    if interruptible:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    command(prog_name="vcam")


if __name__ == "__main__":
    main()
