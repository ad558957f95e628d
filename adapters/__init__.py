"""Adapters: how the service talks to the outside world (configuration, Kafka, PostgreSQL,
HTTP probes, logs). Entry points and the command layer use them; contracts (schemas/) and the
run pipeline (training/) never do."""
