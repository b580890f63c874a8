# The virtual environment is created on first use; every target below works on
# a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test proto lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: serve on 127.0.0.1:50051 with an SQLite file (migrated on start)
run: $(STAMP)
	$(BIN)/loanbilling migrate
	$(BIN)/loanbilling serve

## test: the whole suite, on SQLite and on the PostgreSQL at 127.0.0.1:5432
test: $(STAMP)
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
## another) and hadolint
BUF_BREAKING_AGAINST ?=
lint: $(STAMP)
	$(BIN)/ruff check loanbilling tests bench
	$(BIN)/lint-imports
	bash scripts/buf_lint.sh $(BIN)/python
	bash scripts/buf_breaking.sh $(BIN)/python $(BUF_BREAKING_AGAINST)
	$(BIN)/hadolint Dockerfile

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
