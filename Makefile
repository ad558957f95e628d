# The two commands the README starts with. Both create (or reuse) the virtual environment.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install up down clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Kafka + PostgreSQL + api + projector in the background, then the seed's example job.
demo: $(STAMP)
	$(BIN)/tunix-tune up
	$(BIN)/tunix-tune demo

# The whole suite on real Kafka and PostgreSQL (started by the tests when not running).
test: $(STAMP)
	$(BIN)/python -m pytest -q

up: $(STAMP)
	$(BIN)/tunix-tune up

down: $(STAMP)
	$(BIN)/tunix-tune down

clean: down
	rm -rf .state
