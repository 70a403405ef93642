"""The explanation of one layer, and the text `archspec explain` prints."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Explanation:
    """The explanation of one layer (call site).

    `lines` are the sentences shown under `header`; `tags` says what each line is about
    (`shape`, `params`, `macs`, `pair`). `equations` are the arithmetic identities quoted in the
    lines, e.g. `56 = floor((112 + 2·1 - 3) / 2) + 1` or `(5·5·3 + 1)·6 = 456` (`·` is
    multiplication, `,` a thousands separator). `figures` holds the numbers shown (`params`,
    `macs`, `out.height`, `dropped.width`, `separable.ratio`, `bottleneck.direct_macs`...)."""

    node: str
    op: str
    header: str
    lines: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    equations: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def lines_of(self, *tags: str) -> list[str]:
        return [line for line, tag in zip(self.lines, self.tags) if tag in tags]

    def text(self, indent: str = "  ") -> str:
        return "\n".join([self.header, *(indent + line for line in self.lines)])

    def __str__(self) -> str:
        return self.text()


def format_explanations(explanations: list[Explanation]) -> str:
    """The text `archspec explain` prints: one block per layer, separated by blank lines."""
    return "\n\n".join(e.text() for e in explanations)
