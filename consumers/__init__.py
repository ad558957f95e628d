"""Everything that consumes the event log: the projector (read model) and the tuner (Ray Tune
experiments); records.py turns records into events the same way for both."""
