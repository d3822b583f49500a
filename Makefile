# Kindling: two commands on a fresh machine with Python 3.11 and make.
#   make run   set up, migrate, seed the demo, start web + worker + scheduler
#   make test  set up and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test lint setup migrate seed doctor worker scheduler bench load clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

migrate: setup
	$(FLASK) db upgrade

seed: migrate
	BASE_URL=$${BASE_URL:-http://$(HOST):$(PORT)} $(FLASK) seed-demo

run: seed
	BASE_URL=$${BASE_URL:-http://$(HOST):$(PORT)} $(FLASK) run-all --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

doctor: setup
	$(FLASK) doctor

worker: setup
	$(FLASK) worker

scheduler: setup
	$(FLASK) scheduler

bench: setup
	@command -v wrk >/dev/null || (echo "Installing wrk (Debian package) for the load benchmarks"; \
		(apt-get update -qq && apt-get install -y -qq wrk) || sudo apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

# 200 visitors submitting + an open-pixel storm for LOAD_SECONDS (120) on loopback; checks no
# lead lost and no email sent twice (bench/load.py).
load: setup
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) .pytest_cache
