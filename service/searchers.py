"""Where the job's searchers lived before they moved to service/search/searchers.py. Ray pickles
a running experiment's searcher by its class's module path, so an experiment saved by an
earlier tuner names `service.searchers.TPE`; this module keeps that name (and the module's
functions, for any older caller) pointing at the moved code so such experiments still restore.
New code imports from service.search.searchers."""

from service.search.searchers import (  # noqa: F401
    TPE,
    param_space,
    ray_domain,
    search_algorithm,
    searcher_seed,
    tpe,
)
