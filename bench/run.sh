#!/usr/bin/env bash
# make bench: install the load generator and nginx from Debian if missing, then bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench: installing ${missing[*]} (Debian packages)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# The datastore images the tests and Compose use (local mirrors where there is no registry).
if [ -f ../shared/docker/images.env ] && [ -z "${POSTGRES_IMAGE:-}" ]; then
    set -a
    # shellcheck disable=SC1091
    . ../shared/docker/images.env
    set +a
fi

# The whole run is bounded: a stuck step must not hang CI.
exec timeout --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-1200}" \
    "${UV:-uv}" run --frozen python bench/run.py "$@"
