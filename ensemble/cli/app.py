"""The Typer app and what every command shares: consoles, common options, the error handler.

Results go to standard output; progress and errors to standard error, so
`ens leaderboard --format json | jq` stays clean. Every EnsError becomes one line
`error: ...` and exit code 1.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import signal
import threading
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.text import Text

from ensemble import __version__
from ensemble.errors import EnsError
from ensemble.inference.tta import VIEWS
from ensemble.tasks import MERGES, VALUE_MERGES

app = typer.Typer(
    name="ens",
    help=(
        "Kaggle-style image classification, from raw files to a blended submission.\n\n"
        "ens folds -> ens train-folds -> ens blend. Start with `ens demo` to see it run.\n\n"
        "Example: ens folds --k 5 && ens train-folds -n r18 --model resnet18 && ens blend -n first"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup and no highlighting: messages carry paths, ids and TOML section names such as
# "[competition]", which rich would otherwise read as style tags and drop.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="Workspace folder holding ens.toml.", file_okay=False),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace existing outputs.")]
TtaOption = Annotated[
    Optional[str],
    typer.Option("--tta", help=f"Test-time views, a comma list of: {', '.join(VIEWS.names())} (scale:F, shift:F); the identity is always in."),
]
TtaMergeOption = Annotated[Optional[str], typer.Option("--tta-merge", help=f"How views merge: {', '.join(MERGES.names())} of probabilities; {', '.join(VALUE_MERGES.names())} of a regression's values.")]


def default_help(cls, field: str) -> str:
    """Help text for a flag whose default lives in a settings dataclass (or ens.toml)."""
    return f"(default: ens.toml, else {getattr(cls(), field)!r})"


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a batch system's time limit), raised where Ctrl-C's KeyboardInterrupt
    would be, so a run stops the same way: workers stopped, locks released, nothing half-written."""


def raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread while a command runs (Python's default
    ends the process at once, leaving its worker processes orphaned and its locks held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def handles_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            with sigterm_as_interrupt():
                return command(*args, **kwargs)
        except EnsError as error:
            err.print(Text("error:", style="red"), str(error))
            raise typer.Exit(1) from None
        except OSError as error:
            # Writes through the store name their file already; this catches the others
            # (a folder made, an image of the demo written) when the disk fills up.
            if error.errno not in WRITE_ERRORS:
                raise
            where = f"{error.filename}: " if error.filename else ""
            err.print(Text("error:", style="red"), f"{where}cannot write: {error.strerror}")
            raise typer.Exit(1) from None
        except Terminated:
            err.print("terminated; run the same command again to resume")
            raise typer.Exit(128 + signal.SIGTERM) from None
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to resume")
            raise typer.Exit(130) from None

    return run


def parse_list(value: str | None, option: str, convert=str) -> list | None:
    if value is None or value.strip() == "":
        return None
    try:
        values = [convert(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise EnsError(f"{option}: cannot read {value!r}; expected a comma-separated list")
    return values


def version_callback(value: bool) -> None:
    if value:
        out.print(f"ens {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    pass
