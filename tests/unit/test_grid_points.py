"""Grid points are indexed, never listed: the lazy view against itertools.product's order
(property-style), a billion-point grid counted and indexed, and the steered searcher's count
of a warm-started grid's untried points against listing them."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.job_run import JobRun
from schemas.grid import GridPoints
from schemas.job_spec import JobSpec
from service.search.steered_search import SteeredVariants
from tests.support.specs import example_spec

# Small values with repeats and values equal across types (1, 1.0, True): the cases where a
# point's identity is subtle.
VALUES = st.lists(st.sampled_from([0, 1, 1.0, True, 2, "a", "b", False]), min_size=1, max_size=4)
AXES = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), VALUES, max_size=4)


@given(AXES)
def test_the_lazy_grid_is_itertools_product_in_order(axes):
    listed = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    grid = GridPoints(axes)
    assert grid.count == len(listed) and list(grid) == listed
    assert [grid.point(i) for i in range(grid.count)] == listed
    assert [grid[i - grid.count] for i in range(grid.count)] == listed  # negative indices from the end
    with pytest.raises(IndexError):
        grid.point(grid.count)


@given(AXES, st.data())
def test_multiplicity_counts_the_equal_points_without_walking_the_grid(axes, data):
    listed = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    grid = GridPoints(axes)
    point = data.draw(st.sampled_from(listed)) if data.draw(st.booleans()) else {
        name: data.draw(st.sampled_from([0, 2, "a", "z", 7.5])) for name in axes}
    assert grid.multiplicity(point) == sum(p == point for p in listed)
    assert (point in grid) == (point in listed)


def test_a_grid_of_a_billion_points_is_counted_and_indexed_without_listing_it():
    thousand = list(range(1000))
    grid = GridPoints({"a": thousand, "b": thousand, "c": thousand})
    assert grid.count == 10**9
    assert grid.point(123_456_789) == {"a": 123, "b": 456, "c": 789}
    assert grid[-1] == {"a": 999, "b": 999, "c": 999}
    huge = GridPoints({f"p{i}": thousand for i in range(50)})  # 10^150: beyond len(), not beyond count
    assert huge.count == 10**150 and huge.point(10**150 - 1) == {f"p{i}": 999 for i in range(50)}
    assert huge.multiplicity({f"p{i}": 7 for i in range(50)}) == 1


TRIED = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from([0, 1, True, 2, "a", 9]),
                                 max_size=4), max_size=6)


@given(AXES.filter(bool), TRIED)
def test_a_warm_started_grid_plans_its_untried_points_as_listing_them_would(axes, tried):
    spec = JobSpec.model_validate(example_spec(num_samples=2, search_algorithm="grid", search_space={
        name: {"type": "grid", "values": values} for name, values in axes.items()}))
    searched = tuple(spec.search_space)
    keys = {tuple((name, config.get(name)) for name in searched) for config in tried}
    listed = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    untried = sum(tuple((name, p[name]) for name in searched) not in keys for p in listed) if tried else len(listed)
    job_id = uuid.uuid4()
    with JobRun.open(job_id, lambda e: None, spec):
        searcher = SteeredVariants(job_id, searched, tried, "grid", random_state=0)
        assert searcher._planned() == 2 * untried  # what the wrapper checks at every step of Ray's loop
