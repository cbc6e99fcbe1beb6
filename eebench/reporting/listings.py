"""How a Findings bullet names points: inline when few, else in a table below the bullets that it points to."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from eebench.reporting.document import Table
from eebench.reporting.formatting import fmt

MAX_INLINE = 3  # points a bullet names itself; a longer list becomes a table below the bullets


def describe_point(row: pd.Series) -> str:
    return f"`{row['family']}` at threshold {fmt(row['threshold'], 'g')}"


class Listings:
    """The tables below the Findings bullets: one per list too long for the bullet that counts it."""

    def __init__(self) -> None:
        self.tables: list[Table] = []

    def points(self, rows: pd.DataFrame, describe: Callable, title: str, columns: dict[str, Callable]) -> str:
        """The rows named inline when there are at most MAX_INLINE, else a pointer to a new table of them
        (``columns``: header -> cell of a row)."""
        if len(rows) <= MAX_INLINE:
            return "; ".join(describe(row) for _, row in rows.iterrows())
        cells = [[str(cell(row)) for cell in columns.values()] for _, row in rows.iterrows()]
        self._table(list(columns), title).rows.extend(cells)
        return f"listed in *{title}* below"

    def _table(self, headers: list[str], title: str) -> Table:
        """The table of this title (lists of one kind from several backbones share one), new if there is none."""
        for table in self.tables:
            if table.title == title:
                return table
        self.tables.append(Table(headers, [], title=title))
        return self.tables[-1]

    def answers(self, rows: list[list[str]], title: str) -> None:
        self.tables.append(Table(["backbone", "fastest configuration within 1 point of the full model"], rows, title=title))


def point_columns(extra: dict[str, Callable] | None = None) -> dict[str, Callable]:
    """Table columns naming a point, then ``extra`` (header -> cell of a row)."""
    return {"configuration": lambda row: row["family"], "threshold": lambda row: fmt(row["threshold"], "g")} | (extra or {})
