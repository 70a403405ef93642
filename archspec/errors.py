"""The one error type archspec raises for bad input, and the source locations it quotes.

Every stage (YAML loading, schema checks, IR construction, static passes) reports problems as a
`SpecError` carrying where in which file the problem is, which node it concerns and, where it
helps, a hint. The CLI prints `str(error)` and exits 1; nothing else is shown to the user.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ArchspecError(Exception):
    """Base of every error archspec reports to a user (never a bug in archspec itself)."""


class SpecError(ArchspecError):
    def __init__(
        self,
        message: str,
        loc: Location | None = None,
        node: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.loc = loc
        self.node = node
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.loc} " if self.loc else ""
        node = f"node '{self.node}': " if self.node else ""
        text = f"{where}{node}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known spelling, or None when nothing is close."""
    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def check_choice(option: str, value: str, choices: Iterable[str]) -> str:
    """`value` when it is one of `choices`, else "OPTION must be a, b or c, not 'value'"."""
    choices = list(choices)
    if value not in choices:
        raise ArchspecError(f"{option} must be {' or '.join(', '.join(choices).rsplit(', ', 1))}, not '{value}'")
    return value
