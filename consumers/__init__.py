"""Kafka consumers: the projector (read model) and, later, the tuner."""
