#!/usr/bin/env bash
# End-to-end scenarios: a private Postfix instance (deploy/postfix config) in front
# of `ingest serve --with-worker`, driven with swaks. Installs postfix and swaks
# when they are missing and we are root; the tests skip (or fail under CI=true)
# when they cannot run. Extra arguments go to pytest, e.g. `-k storage`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=0
for command in postfix postconf postqueue postmap swaks script; do
    PATH="$PATH:/usr/sbin" command -v "$command" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "e2e: installing postfix and swaks" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends postfix swaks bsdutils >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends postfix swaks bsdutils >/dev/null; }
    else
        echo "e2e: postfix and swaks are missing; run as root (or install them) to run the scenarios" >&2
    fi
fi

python="${PYTHON:-.venv/bin/python}"
exec "$python" -m pytest -m e2e tests/e2e -v -p no:randomly "$@"
