"""Entry point of the frozen app: a double-click (no arguments) starts the desktop app."""

import sys

from localembed.cli import main

if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.argv.append("app")
    main()
