# 商家助手 — the two commands a newcomer needs are `make run` and `make test` (see README.md).
APP_PY := .venv/app/bin/python
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: run test check setup venvs tools prepare lint clean

## Set up whatever is missing, then run API + Rasa + action server (Ctrl-C stops all three).
run: venvs
	$(APP_PY) -m devtools.stack

## Set up whatever is missing, then run the whole test suite (unit + end-to-end).
test: setup tools
	$(APP_PY) -m pytest $(PYTEST_ARGS)

## The fast tests for the inner loop (no Rasa, no browser, no training, SQLite only): about 2.5 minutes.
check: setup
	SJZS_TEST_BACKENDS=sqlite $(APP_PY) -m pytest -q -m "not e2e and not browser and not slow" $(PYTEST_ARGS)

## Create what is missing: venvs, embedding model, database, trained Rasa model.
setup: venvs
	$(APP_PY) -m devtools.prepare

venvs:
	bash scripts/setup-venvs.sh

## Debian's Chromium and nginx, and the published rasa-webchat bundle, for the browser and scale-out tests.
tools:
	bash scripts/setup-test-tools.sh

lint: venvs
	.venv/app/bin/ruff check .

clean:
	rm -rf var .pytest_cache
