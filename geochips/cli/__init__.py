"""The ``geochips`` command line (also ``python -m geochips``). Nothing depends on it.

Errors are one line on stderr and a non-zero exit (1: the work failed, 2: the command was
wrong), never a traceback unless ``--debug``; warnings are one line too, their advice in
flags (:mod:`geochips.cli.words`). ``--help`` and ``--version`` import nothing but
:mod:`argparse`; each command imports what it needs when it runs (torch only for ``demo``
and ``show``, matplotlib only for ``preview`` and ``show``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from geochips.cli.parser import build_parser
from geochips.cli.words import cli_words, failure_summary, one_line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from geochips import __version__

        print(f"geochips {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    with _warnings_in_one_line():
        try:
            return _command(args.command)(args)
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except Exception as exc:
            if args.debug:
                raise
            code, text = _explain(exc, args)
            _error(text)
            return code


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    if name == "demo":
        from geochips.cli.demo import demo

        return lambda args: demo(args.workers)
    if name == "index":
        from geochips.cli.build import index_command

        return index_command
    if name == "localize":
        from geochips.cli.local import localize_command

        return localize_command
    from geochips.cli import views

    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "info": views.info_command,
        "preview": views.preview_command,
        "show": views.show_command,
    }
    return commands[name]


def _explain(exc: Exception, args: argparse.Namespace) -> tuple[int, str]:
    """The exit status and the one line that say what went wrong."""
    from geochips.errors import GeochipsError, InvalidParameterError

    failures = getattr(exc, "failures", None)
    if failures and len(failures) > 1:
        total = getattr(exc, "total", len(failures))
        where = (
            f"; all of them in {args.errors}"
            if getattr(args, "errors", None)
            else "; --errors FILE lists them all"
        )
        return 1, cli_words(failure_summary(failures, total)) + where
    if isinstance(exc, InvalidParameterError):
        return 2, cli_words(one_line(str(exc)))
    if isinstance(exc, GeochipsError):
        return 1, cli_words(one_line(str(exc)))
    if isinstance(exc, ImportError):
        extra = {"matplotlib": "plot", "pyarrow": "parquet", "pyogrio": "labels"}.get(
            (exc.name or "").split(".")[0]
        )
        hint = f": pip install 'geochips[{extra}]'" if extra else ""
        return 1, f"{one_line(str(exc))}{hint}"
    if isinstance(exc, OSError):
        return 1, one_line(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    return 1, (
        f"internal error, {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug "
        "for the traceback, and please report it)"
    )


def _error(text: str) -> None:
    sys.stderr.write(f"geochips: error: {text}\n")


@contextmanager
def _warnings_in_one_line() -> Iterator[None]:
    """Show each warning once, as one line in the command line's words."""
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = cli_words(one_line(str(message)))
        if text not in shown:
            shown.add(text)
            sys.stderr.write(f"geochips: warning: {text}\n")

    with warnings.catch_warnings():
        saved: Any = warnings.showwarning
        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = saved
