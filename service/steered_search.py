"""Where the steered searchers lived before they moved to service/search/steered_search.py. Ray
pickles a running experiment's searcher by its class's module path, so an experiment saved by
an earlier tuner names `service.steered_search.SteeredSearch` (or SteeredVariants); this module
keeps those names pointing at the moved classes so such experiments still restore. New code
imports from service.search.steered_search."""

from service.search.steered_search import (  # noqa: F401
    MAX_SKIPS,
    UNBOUNDED_SAMPLES,
    SteeredSearch,
    SteeredVariants,
)
