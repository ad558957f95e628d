"""The projector: folds the events topic into the PostgreSQL read model (service.py), with the
pure rules in projection.py, one batch -> SQL in read_model.py and bulk.py, and replay.py to
rebuild the read model from offset 0."""
