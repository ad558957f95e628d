"""Local provisioning for development, the demo and the tests: a real Kafka 4 broker (KRaft, jars
from Maven Central), a real PostgreSQL (Debian's packages) and the service processes (api,
projector, tuner) in the background. Neither the HTTP gateway nor the CLI: the CLI's
`services`, `up`, `down` and `status` commands, the tests and the benchmarks call it.

It imports only adapters/ (settings, Kafka security), never app/, consumers/ or service/.
All state (jars, data, logs, pids) lives in ``paths.state_dir()``.
"""
