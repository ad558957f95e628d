"""Local dev stack: a real Kafka 4 broker (KRaft) and a real PostgreSQL.

Stdlib only, so it can bootstrap a fresh machine before the venv exists.
All state (jars, data, logs, pids) lives in ``paths.state_dir()``.
"""
