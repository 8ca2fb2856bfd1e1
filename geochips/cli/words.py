"""Messages in the command line's words: flags for keyword arguments, one line each.

The library's errors and warnings give their advice as Python (``edge='pad'``,
``overview_level=None``); on the command line the same advice reads ``--edge pad`` and
``--overview-level full``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from geochips.errors import count_causes

FLAGS = {
    "assets": "--assets",
    "bands": "--bands",
    "block": "--block",
    "buffer": "--buffer",
    "edge": "--edge",
    "gdal_options": "--gdal-option",
    "grid": "--grid",
    "min_valid": "--min-valid",
    "overlap": "--overlap",
    "overview_level": "--overview-level",
    "properties": "--properties",
    "resampling": "--resampling",
    "seed": "--seed",
    "sign": "--sign",
    "size": "--size",
    "stride": "--stride",
    "workers": "--workers",
}
"""Keyword arguments of the library and the flags that set them."""

_ARGUMENT = re.compile(
    r"\b(" + "|".join(FLAGS) + r")=(\([^()]*\)|\[[^\[\]]*\]|'[^']*'|\"[^\"]*\"|[\w.\-]+)"
)
_CALLS = {
    "geochips.check_alignment(index)": "`geochips info` on the saved index",
    "ChipIndex.build": "`geochips index`",
}


def cli_words(text: str) -> str:
    """Return ``text`` with each ``name=value`` of a known argument as its flag and value."""
    for call, words in _CALLS.items():
        text = text.replace(call, words)
    return _ARGUMENT.sub(lambda m: f"{FLAGS[m[1]]} {_flag_value(m[1], m[2])}", text)


def _flag_value(name: str, value: str) -> str:
    value = value.strip("'\"")
    if value == "None":
        return "full" if name == "overview_level" else "none"
    if value[:1] in "([":
        parts = [p.strip().strip("'\"") for p in value[1:-1].split(",") if p.strip()]
        return parts[0] if len(set(parts)) == 1 else ",".join(parts)
    return value


def one_line(text: str) -> str:
    """The first line of ``text`` (whitespace collapsed), saying how many lines follow."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = " ".join(lines[0].split())
    return first if len(lines) == 1 else f"{first} (and {len(lines) - 1} more lines)"


def failure_summary(failures: Sequence[BaseException], total: int, listed: int = 3) -> str:
    """One line for many failed scenes: counts by cause and the first few scenes."""
    counts = ", ".join(f"{n} {cause}" for cause, n in count_causes(failures))
    first = "; ".join(one_line(str(f)) for f in failures[:listed])
    more = f" (+{len(failures) - listed} more)" if len(failures) > listed else ""
    return f"{len(failures)} of {total} scenes failed ({counts}): {first}{more}"
