"""What a rejected CSV import reports: each problem names the file, the data row and the column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CsvProblem:
    file: str
    row: int | None  # 1-based data row; 0 = the header; None = the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append("header" if self.row == 0 else f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class CsvImportError(Exception):
    """A CSV import was rejected; nothing was loaded.

    ``file``, ``row`` (1-based data row, 0 for the header, None for the whole file),
    ``column`` and ``message`` describe the first problem; ``problems`` lists all found.
    """

    def __init__(self, problems: Sequence[CsvProblem]):
        if not problems:
            raise ValueError("CsvImportError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.file, self.row, self.column, self.message = first.file, first.row, first.column, first.message
        more = len(self.problems) - 1
        super().__init__(str(first) + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


_MAX_PROBLEMS = 50


class ProblemList:
    """The problems found so far (at most ``_MAX_PROBLEMS``; the first ones are the useful ones)."""

    def __init__(self) -> None:
        self.items: list[CsvProblem] = []

    def add(self, file: str, row: int | None, column: str | None, message: str) -> None:
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(CsvProblem(file, row, column, message))

    def bad_rows(self, file: str, column: str, mask: np.ndarray, values: Sequence, what: str) -> bool:
        """Report the first row where ``mask`` is true (and how many more); True if any."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return False
        first = int(idx[0])
        more = f" ({idx.size - 1} more row{'s' if idx.size > 2 else ''} in this column)" if idx.size > 1 else ""
        self.add(file, first + 1, column, f"{what}: {values[first]!r}{more}")
        return True
