"""Where the steered searchers lived before they moved to service/search/steered_search.py: Ray
pickles an experiment's searcher by its class's module, and experiments saved by an earlier
tuner are restored by name from here."""

from service.search.steered_search import SteeredSearch, SteeredVariants  # noqa: F401
