"""The points of a grid search, indexed without building them.

A grid of 1,000 values in each of 3 parameters has 10⁹ points; a list of them exhausts memory
(and the event loop that builds it). `GridPoints` holds only the axes: its count is the
product of their lengths, and point i is decoded from i as a mixed-radix number.

Order (fixed; logs and replays rely on it): the order of `itertools.product` over the axes in
the order given, i.e. the last axis varies fastest. Point i takes, for axis k, the value at
digit k of i written in the radices (len(axis 0), ..., len(axis n-1)), the last digit least
significant.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property


class GridPoints:
    """Every combination of one value per axis, as dicts {name: value}; [{}] without axes."""

    def __init__(self, axes: Mapping[str, Sequence]):
        self.names: tuple[str, ...] = tuple(axes)
        self._axes: tuple[Sequence, ...] = tuple(axes.values())  # the spec's own lists: no copy

    @cached_property
    def count(self) -> int:
        """How many points (a Python int: exact however large, unlike len())."""
        return math.prod(len(axis) for axis in self._axes)

    def point(self, index: int) -> dict:
        """The point at `index` (negative counts from the end), in itertools.product's order."""
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"grid point {index} out of range: the grid has {self.count} points")
        values = []
        for axis in reversed(self._axes):  # the last axis is the least significant digit
            index, digit = divmod(index, len(axis))
            values.append(axis[digit])
        return dict(zip(self.names, reversed(values)))

    @cached_property
    def _counts(self) -> tuple[Counter, ...]:
        # Per axis, how often each value occurs: equal values (1, 1.0, True) count together, as
        # they compare equal in a product's tuples.
        return tuple(Counter(axis) for axis in self._axes)

    def multiplicity(self, point: Mapping) -> int:
        """How many indices hold a point equal to `point` on every axis (0: not in the grid);
        more than 1 when an axis repeats a value. O(axes), not O(points)."""
        if set(point) != set(self.names):
            return 0
        try:
            return math.prod(counts[point[name]] for name, counts in zip(self.names, self._counts))
        except TypeError:  # an unhashable value (a list) equals no grid value: those are scalars
            return 0

    def __contains__(self, point: object) -> bool:
        return isinstance(point, Mapping) and self.multiplicity(point) > 0

    def __getitem__(self, index: int) -> dict:
        # operator.index refuses slices and floats: slicing would build the list this avoids.
        return self.point(operator.index(index))

    def __len__(self) -> int:
        return self.count  # OverflowError past sys.maxsize: use .count for grids that may be huge

    def __iter__(self) -> Iterator[dict]:
        # Lazy, in the same order as point(0), point(1), ...
        return (dict(zip(self.names, combo)) for combo in itertools.product(*self._axes))

    def __repr__(self) -> str:
        return f"GridPoints({', '.join(f'{n}: {len(a)}' for n, a in zip(self.names, self._axes))}; {self.count} points)"
