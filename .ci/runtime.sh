#!/usr/bin/env bash
# CI: build the patched CPython 3.13 runtime from the Debian 3.13.5 source
# package (the exact upstream tarball) and run its smoke tests.
#
# Installs what it needs on Debian/Ubuntu (deb-src entry, build dependencies).
# Environment:
#   RETRACE_CPYTHON_CACHE   where sources and build trees go (default: ~/.cache/retrace-cpython)
#   RETRACE_CPYTHON_JOBS    make -j (default: number of CPUs)
#   SMOKE_REPEAT            runs per smoke script (default: 20)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CACHE=${RETRACE_CPYTHON_CACHE:-$HOME/.cache/retrace-cpython}
export RETRACE_CPYTHON_CACHE=$CACHE
export RETRACE_CPYTHON_JOBS=${RETRACE_CPYTHON_JOBS:-$(nproc)}
DEBIAN_VERSION=3.13.5-2+deb13u5
TARBALL=$CACHE/src/Python-3.13.5.tar.xz
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
start=$(date +%s)

if [ ! -f "$TARBALL" ]; then
    echo "== fetching the Debian source package python3.13=$DEBIAN_VERSION"
    if ! apt-cache showsrc python3.13 2>/dev/null | grep -q "^Version: $DEBIAN_VERSION$"; then
        $SUDO tee /etc/apt/sources.list.d/retrace-ci-src.sources >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        $SUDO apt-get update -qq
    fi
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get source --download-only -qq "python3.13=$DEBIAN_VERSION")
    mkdir -p "$CACHE/src"
    mv "$tmp/python3.13_3.13.5.orig.tar.xz" "$TARBALL"
    rm -rf "$tmp"
fi

echo "== build dependencies"
missing=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev \
           liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== nox"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --upgrade nox

echo "== build (sha256 checked against patches/3.13/series.toml) and smoke tests"
SMOKE_REPEAT=${SMOKE_REPEAT:-20} "$PYTHON" -m nox -s smoke-3.13 -- --smoke-only --version 3.13.5

# The runtime tests include Retrace itself built into the fresh runtime and a program recorded
# and replayed there (tests/runtime/test_engine_e2e.py); RETRACE_E2E_REQUIRE makes them fail,
# not skip, when the build is missing or Retrace cannot be installed into it.
export RETRACE_E2E_REQUIRE=1
if [ -d .nox/tests-3-11 ]; then
    echo "== runtime tests against the fresh build (the venv of 'nox -s tests', not reinstalled)"
    "$PYTHON" -m nox -R -s tests-3.11 -- tests/runtime -rs
else
    echo "== Retrace record/replay inside the fresh build"
    "$PYTHON" -m nox -s e2e-3.13 -- --version 3.13.5
fi

echo "== runtime CI done in $(( $(date +%s) - start )) s"
