"""The `vcam` command (`python -m vcam` and the console script).

Ctrl+C while the command is still importing its libraries (a few hundred ms) would end in a
traceback from inside them; until the CLI runs, it just ends the process with status 130.
"""

import os
import signal


def main() -> None:
    interruptible = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not SIG_IGN (nohup, &)
    if interruptible:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    from vcam.cli import app

    if interruptible:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    app(prog_name="vcam")


if __name__ == "__main__":
    main()
