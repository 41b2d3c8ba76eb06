#!/usr/bin/env bash
# The container stage (docs/containers.md): the lock check, the images built with
# podman on a local Debian base, then the stack scenarios (tests/containers).
#
#   1. uv.lock and requirements.lock current with pyproject.toml (just lock-check)
#   2. podman, runc, netavark, aardvark-dns, iptables, iproute2, debootstrap (apt, when root)
#   3. the base image: debootstrap bookworm (minbase + python3, python3-venv,
#      ca-certificates), imported into podman; made fresh on every run (a fresh
#      machine has none), shared by the builds of this run
#   4. the ingest image (Dockerfile), the Postfix image (deploy/postfix) and the test
#      stack's Postgres + Redis image (tests/containers/services), all on that base
#   5. pytest -m containers tests/containers (extra arguments go to pytest)
#
# The images are removed at the end, so that nothing carries over to the next run
# (and no disk fills up). INGEST_CONTAINERS_KEEP=1 keeps them and reuses the base
# image of an earlier run: for iterating on the images by hand; CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
venv=.venv/bin
step() { echo "containers: $* ($((SECONDS - started)) s)" >&2; }

"$venv/just" lock-check

packages=(podman runc netavark aardvark-dns iptables iproute2 debootstrap swaks)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "containers: missing packages ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
step "$(dpkg-query -W -f='${Package} ${Version}, ' podman runc netavark aardvark-dns | sed 's/, $//')"
if [ "$(id -u)" != 0 ]; then
    echo "containers: the stage runs podman as root (rootful networking, port forwarding)" >&2
    exit 1
fi

# This kernel's cgroup layout defeats crun and systemd cgroups, and the default
# ulimits fail setrlimit in a container: runc, cgroupfs, no default ulimits.
tag=ci
base=localhost/order-ingest-base:$tag
images=("localhost/order-ingest:$tag" "localhost/order-ingest-postfix:$tag"
    "localhost/order-ingest-test-services:$tag")
work=$(mktemp -d /var/tmp/ingest-containers.XXXXXX)
cleanup() {
    if [ "${INGEST_CONTAINERS_KEEP:-}" != 1 ]; then
        podman rmi --force "${images[@]}" "$base" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF="$work/containers.conf"

if [ "${INGEST_CONTAINERS_KEEP:-}" = 1 ] && podman image exists "$base"; then
    step "reusing $base"
else
    step "debootstrap bookworm for $base"
    rootfs="$work/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    # The base trusts what this machine trusts (its CA bundle, which may include an
    # inspecting proxy's CA), so pip reaches PyPI from the builds as the host does.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt \
        "$rootfs/usr/local/share/ca-certificates/build-host.crt"
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    tar -C "$rootfs" -c . | podman import --quiet - "$base" >/dev/null
    rm -rf "$rootfs"
fi

build() {
    local image=$1 context=$2
    shift 2
    step "building $image"
    # --layers=false: no intermediate images left behind (nothing is reused later).
    podman build --quiet --format docker --layers=false --network host \
        --build-arg "BASE_IMAGE=$base" --tag "$image" "$@" "$context" >"$work/build.log" 2>&1 \
        || { tail -40 "$work/build.log" >&2; exit 1; }
}
build "${images[0]}" .
build "${images[1]}" deploy/postfix
build "${images[2]}" tests/containers/services

export INGEST_STACK_INGEST_IMAGE="${images[0]}"
export INGEST_STACK_POSTFIX_IMAGE="${images[1]}"
export INGEST_STACK_SERVICES_IMAGE="${images[2]}"
step "the stack scenarios"
status=0
"$venv/python" -m pytest -m containers tests/containers -v -rP -p no:randomly "$@" || status=$?
step "done (exit $status)"
exit "$status"
