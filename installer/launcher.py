"""Entry point of the frozen app: a double-click (no arguments) starts the desktop app.

The app also runs itself as the child that tries a model before it is loaded (a frozen app
has no ``python -m``): that run starts with ``PROBE_FLAG``.
"""

import sys

from localembed.cli import main
from localembed.engine.probe import PROBE_FLAG, child_main

if __name__ == "__main__":
    if sys.argv[1:2] == [PROBE_FLAG]:
        sys.exit(child_main(sys.argv[2:]))
    if len(sys.argv) == 1:
        sys.argv.append("app")
    main()
