"""The `ens` command line: a thin layer that parses options, calls the library, renders results.

app.py holds the Typer app and what the commands share; each other module holds one group of
commands, and importing it registers them. Torch is only imported by the commands that train.
"""

# Imported in the order `ens --help` lists the commands: the order data flows.
from ensemble.cli import prepare, audit, training, results, export, tools, auto  # noqa: F401, I001  (registers the commands)
from ensemble.cli.app import app


def main() -> None:
    app()
