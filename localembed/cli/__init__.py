"""The `localembed` command line: models and embeddings (commands.py), collections
(collections.py), one click group."""

from localembed.cli.collections import COMMANDS
from localembed.cli.commands import cli, main

for _command in COMMANDS:
    cli.add_command(_command)

__all__ = ["cli", "main"]
