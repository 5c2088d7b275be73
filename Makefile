# Two commands: `make demo` and `make test`. Everything they need is installed here, into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export VENUE_TIMEZONE ?= Asia/Shanghai
export BUSINESS_DAY_CUTOFF_HOURS ?= 6

.PHONY: demo test lint install constraints bench soak db-down clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,k8s]'
	touch $(STAMP)

install: $(STAMP)

## make constraints: re-resolve every package from pyproject.toml alone, in a scratch venv, into constraints.txt
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet -e '.[test,k8s]'
	{ sed -n '1,3p' constraints.txt; .venv-constraints/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints

## make demo: Postgres + demo venue + DWS + Dagster UI (:3000) + API (:8000); Ctrl-C stops all
demo: install
	$(BIN)/zqyy demo $(DEMO_ARGS)

## make test: lint and types, then the whole suite on a real (embedded) Postgres
test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: ruff over the tree, mypy over the core and the API (settings in pyproject.toml)
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## make bench: every benchmark in bench/ (figures go into the README); one: make bench BENCH=bench_api
BENCH ?= bench_dws bench_prewarm bench_events bench_api bench_realtime
bench: install
	@for b in $(BENCH); do echo "== $$b"; $(BIN)/python -W ignore bench/$$b.py || exit 1; done

## make soak: the chaos soak (README "Chaos soak"): the whole system under live traffic and a fault mix
MINUTES ?= 10
RATE ?= 12
soak: install
	$(BIN)/python -W ignore bench/bench_soak.py --minutes $(MINUTES) --rate $(RATE)

db-down:
	$(BIN)/zqyy db-down

clean:
	-$(BIN)/zqyy db-down
	rm -rf .pgdata .dagster_home
