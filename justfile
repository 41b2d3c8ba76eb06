# order-ingest tasks. Start with ./dev (it makes the virtualenv), e.g. `./dev run`.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv/bin"
export INGEST_DATA_DIR := env_var_or_default("INGEST_DATA_DIR", justfile_directory() / "var")
export INGEST_LOG_FORMAT := env_var_or_default("INGEST_LOG_FORMAT", "console")

# list the recipes
default:
    @{{just_executable()}} --list

# (`./dev run` runs `setup`, then becomes the server, so that Ctrl-C reaches it directly)
# embedded Postgres, migrations, demo tenant `acme`, LMTP + milter + worker in the foreground
run: setup
    {{venv}}/ingest serve --with-worker

# migrations (creating the embedded Postgres on first use) and the demo tenant `acme`
setup:
    {{venv}}/ingest db upgrade
    {{venv}}/ingest tenants add acme --name "Acme Corp (demo)" --if-missing
    @echo "Send a sample order:   ./dev send            (./dev send --help)"
    @echo "See the rows:          .venv/bin/ingest messages list"

# the test suite (all tiers but e2e); pytest exits non-zero when no test ran
test *ARGS:
    {{venv}}/python -m pytest {{ARGS}}

# ruff, mypy --strict, import-linter contracts, hadolint
lint:
    {{venv}}/ruff check .
    {{venv}}/ruff format --check .
    {{venv}}/mypy
    {{venv}}/lint-imports
    {{venv}}/hadolint Dockerfile

# a sample order with a PDF attachment to the demo tenant (server must be running); e.g. --to ADDR
[positional-arguments]
send *ARGS:
    {{venv}}/python -m lmtpd.cli.sample "$@"

# the huey consumer on its own (extraction worker)
worker *ARGS:
    {{venv}}/ingest worker {{ARGS}}

# private Postfix + swaks end-to-end scenarios (installs postfix and swaks when root)
e2e:
    bash scripts/e2e.sh

# benchmarks: ours vs the aiosmtpd baseline vs the storage ceiling
bench *ARGS:
    {{venv}}/python -m benchmarks.run {{ARGS}}
    {{venv}}/python -m benchmarks.sender_auth

# fault-injection scenarios with their summary table
chaos:
    {{venv}}/python -m pytest -m chaos -p no:randomly tests/chaos -v
