"""The figures a prompt gives the model, and what can honestly be derived from them.

Every number in the prompt JSON is a figure: numeric values, figures written inside its strings
(a note's text, an earlier answer's clues; read with the same rules as an answer, so dates are
not figures), the windows its keys name (``visits_30d`` gives 30: "近 30 天" is grounded), the
length of each list (how many visits, notes, tasks it holds) and minutes in hours (``total_minutes``
2814 is "46.9 小时"). So is the number of items of each of the answer's own lists ("共提炼 2 条线索").

A cited number is grounded when it equals a figure within its rounding, or is derived from two
*related* figures: a difference, a ratio (``1.5倍``), a share or a change (``a/b`` and
``(a-b)/b`` as a percentage), a percentage-point difference (of two percentages, or of two
shares as fractions). Two figures are related when they sit in the same object (a period's
revenue and its table fees; a mover's current and previous) or are the same field of parallel
objects (this period's revenue and the comparison period's; two areas' revenue). Pairing every
figure with every other one would ground almost any invented percentage by accident: a prompt
holds ~150 figures, so ~22,000 ratios, several for every 0.1 % of the usual range.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Any

from zqyy_assets.core.grounding.numbers import CitedNumber, cited_numbers

Path = tuple[str | int, ...]

_WINDOW_IN_KEY = re.compile(r"(?<![0-9])(\d+)d(?![a-z])")  # visits_30d, spend_prev_30d
_PERCENT_KEY = re.compile(r"pct|percent|rate|share|ratio|占比|比例")
# Words that name the period of a measure rather than the measure: spend_30d and spend_prev_30d,
# current and previous are the same measure at two times.
_PERIOD_WORDS = re.compile(r"(?:^|_)(?:prev|previous|last|current|cur|this|comparison|\d+d)(?=_|$)")


@dataclass(frozen=True)
class Figure:
    path: Path  # where in the prompt: ("period", "metrics", "revenue"), ("top_movers", 0, "current")
    value: float  # signed as given
    percent_like: bool = False  # a percentage or a share (its key says so, or it was written with %)
    measure: str = field(init=False)  # the leaf's key without its period words (spend_prev_30d -> spend)

    def __post_init__(self) -> None:
        key = next((p for p in reversed(self.path) if isinstance(p, str)), "")
        object.__setattr__(self, "measure", _PERIOD_WORDS.sub("", key))


def _percent_path(path: Path) -> bool:
    return any(isinstance(p, str) and _PERCENT_KEY.search(p) for p in path)


def prompt_figures(prompt: Any, path: Path = ()) -> Iterator[Figure]:
    """Every figure of the prompt JSON, with its path."""
    if isinstance(prompt, bool) or prompt is None:
        return
    if isinstance(prompt, int | float):
        yield Figure(path, float(prompt), _percent_path(path))
        if path and isinstance(path[-1], str) and "minute" in path[-1]:
            yield Figure((*path[:-1], f"{path[-1]}#hours"), prompt / 60)
    elif isinstance(prompt, str):
        for i, number in enumerate(cited_numbers(prompt)):
            yield Figure((*path, i), number.value, number.kind in ("percent", "points"))
    elif isinstance(prompt, dict):
        for key, value in prompt.items():
            for window in _WINDOW_IN_KEY.findall(str(key)):
                yield Figure((*path, f"{key}#window"), float(window))
            yield from prompt_figures(value, (*path, str(key)))
    elif isinstance(prompt, list):
        yield Figure((*path, "#count"), float(len(prompt)))
        for i, value in enumerate(prompt):
            yield from prompt_figures(value, (*path, i))


Pair = tuple[Figure, Figure]


def _groups(figures: list[Figure]) -> tuple[list[list[Figure]], list[list[Figure]]]:
    """(siblings: figures of one object, parallels: the same field of parallel objects)."""
    by_parent: dict[Path, list[Figure]] = {}
    by_shape: dict[tuple[str | int, ...], list[Figure]] = {}
    for f in figures:
        by_parent.setdefault(f.path[:-1], []).append(f)
        # The path with every list index and the key above the leaf's parent wildcarded:
        # period.metrics.revenue ~ comparison.metrics.revenue, top_movers.0.current ~ top_movers.3.current.
        shape = tuple("#" if isinstance(p, int) else p for p in f.path)
        if len(shape) >= 3:
            shape = (*shape[:-3], "*", *shape[-2:])
        by_shape.setdefault(shape, []).append(f)
    return [g for g in by_parent.values() if len(g) > 1], [g for g in by_shape.values() if len(g) > 1]


def _pairs(groups: list[list[Figure]]) -> Iterator[Pair]:
    for group in groups:
        yield from combinations(group, 2)


class _Sorted:
    """A sorted set of candidate values and the one question asked of it."""

    def __init__(self, values: Iterable[float]) -> None:
        self._values = sorted(set(values))

    def near(self, x: float, tolerance: float) -> bool:
        i = bisect.bisect_left(self._values, x - tolerance)
        return i < len(self._values) and self._values[i] <= x + tolerance


class PromptFigures:
    """A prompt's figures, ready to ground cited numbers; derived values are built on first need.

    - an amount or a quantity: a figure, or the difference of two related figures;
    - a percentage: a percentage figure (a share as a fraction, times 100), a share of two
      figures of one object (part over whole), or the change between two values of one measure
      (the same field of parallel objects, or ``spend_prev_30d`` / ``spend_30d``);
    - percentage points: the difference of two related percentages (or of two shares, x 100);
    - a multiple: the ratio of two related figures.
    """

    def __init__(self, prompt: Any, answer: Any = None) -> None:
        self.figures = list(prompt_figures(prompt))
        self.figures += _list_lengths(answer, ("#answer",))

    @cached_property
    def _related(self) -> tuple[list[Pair], list[Pair]]:
        siblings, parallels = _groups(self.figures)
        return list(_pairs(siblings)), list(_pairs(parallels))

    @cached_property
    def _direct(self) -> _Sorted:
        return _Sorted(abs(f.value) for f in self.figures)

    @cached_property
    def _percent_figures(self) -> _Sorted:
        percents = [abs(f.value) for f in self.figures if f.percent_like]
        return _Sorted([*percents, *(p * 100 for p in percents if p <= 1)])

    @cached_property
    def _differences(self) -> _Sorted:
        siblings, parallels = self._related
        return _Sorted(abs(a.value - b.value) for a, b in (*siblings, *parallels))

    @cached_property
    def _point_differences(self) -> _Sorted:
        siblings, parallels = self._related
        pairs = [(a.value, b.value) for a, b in (*siblings, *parallels) if a.percent_like and b.percent_like]
        return _Sorted([*(abs(a - b) for a, b in pairs), *(abs(a - b) * 100 for a, b in pairs if max(a, b) <= 1)])

    @cached_property
    def _ratios(self) -> _Sorted:
        siblings, parallels = self._related
        return _Sorted(r for a, b in (*siblings, *parallels) for r in _both_ways(a.value, b.value))

    @cached_property
    def _shares_and_changes(self) -> _Sorted:
        siblings, parallels = self._related
        shares = (r * 100 for a, b in siblings for r in _both_ways(a.value, b.value))  # also "228.6% of"
        same_measure = [*parallels, *((a, b) for a, b in siblings if a.measure == b.measure)]
        changes = (abs(r - 1) * 100 for a, b in same_measure for r in _both_ways(a.value, b.value))
        return _Sorted([*shares, *changes])

    def grounds(self, number: CitedNumber) -> bool:
        """Whether the cited number equals a figure, or one derived from two related figures."""
        x = number.value
        tol = number.tolerance * (1 + 1e-9) + 1e-9 * max(1.0, x)  # float noise on the boundary
        if number.kind == "percent":
            return self._percent_figures.near(x, tol) or self._shares_and_changes.near(x, tol)
        if number.kind == "points":
            return self._percent_figures.near(x, tol) or self._point_differences.near(x, tol)
        if self._direct.near(x, tol):
            return True
        if number.kind == "multiple":
            return self._ratios.near(x, tol)
        return self._differences.near(x, tol)  # an amount or a quantity


def _both_ways(a: float, b: float) -> Iterator[float]:
    if a and b:
        yield abs(a / b)
        yield abs(b / a)


def _list_lengths(answer: Any, path: Path) -> Iterator[Figure]:
    """How many items each of the answer's lists holds ("共提炼 2 条线索" counts its own clues)."""
    if isinstance(answer, list):
        yield Figure((*path, "#count"), float(len(answer)))
        for i, value in enumerate(answer):
            yield from _list_lengths(value, (*path, i))
    elif isinstance(answer, dict):
        for key, value in answer.items():
            yield from _list_lengths(value, (*path, str(key)))
