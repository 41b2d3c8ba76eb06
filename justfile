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
    {{venv}}/hadolint Dockerfile deploy/postfix/Dockerfile tests/containers/services/Dockerfile

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

# uv.lock (pinned, hashed; resolved for every supported Python) and the image's exports of it; run after editing pyproject.toml's dependencies
lock:
    {{venv}}/uv lock --quiet
    {{venv}}/uv export --frozen --no-dev --no-emit-project --format requirements-txt --quiet > requirements.lock
    {{venv}}/uv pip compile requirements-build.in --universal --python-version 3.11 --generate-hashes --quiet --output-file requirements-build.lock

# fails unless uv.lock and requirements.lock are current with pyproject.toml
lock-check:
    @{{venv}}/uv lock --check --quiet || { echo "lock-check: uv.lock is not current with pyproject.toml: run just lock (./dev lock) and commit uv.lock and requirements.lock" >&2; exit 1; }
    @{{venv}}/uv export --frozen --no-dev --no-emit-project --format requirements-txt --quiet | diff -q - requirements.lock >/dev/null || { echo "lock-check: requirements.lock is not the export of uv.lock: run just lock (./dev lock) and commit it" >&2; exit 1; }
    @echo "lock-check: uv.lock and requirements.lock are current with pyproject.toml"

# the images built with podman and the stack under test (scripts/containers.sh; installs podman when root)
containers *ARGS:
    bash scripts/containers.sh {{ARGS}}

# fault-injection scenarios with their summary table
chaos:
    {{venv}}/python -m pytest -m chaos -p no:randomly tests/chaos -v
