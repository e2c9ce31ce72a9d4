#!/usr/bin/env bash
# Makes sure the programs the test suite drives are present: the binaries the harness starts
# its own throwaway servers from — a PostgreSQL server (initdb, pg_ctl, postgres), redis-server,
# nginx (for the forward-auth example in deploy/nginx) — chromium (the browser tests drive the
# machine's own Chromium; never `playwright install`), and the commands the documentation's
# samples run: node (the JavaScript samples), curl and openssl. The suite never uses the servers
# that may already run on the standard ports — not even the system nginx the Debian package may
# start; it only needs the programs. Named on the command line, it also installs wrk (for
# `make bench`), podman, runc and debootstrap (for `make image-test`), and gcc and python3-dev
# (what every install needs to build the relay's compiled part; `make` asks for them).
set -euo pipefail

have_postgres() {
    [ -n "${KEYGATE_TEST_PG_BINDIR:-}" ] && [ -x "${KEYGATE_TEST_PG_BINDIR}/initdb" ] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    command -v initdb >/dev/null 2>&1
}
have_redis() { command -v redis-server >/dev/null 2>&1; }
have_nginx() {
    [ -n "${KEYGATE_TEST_NGINX:-}" ] && [ -x "${KEYGATE_TEST_NGINX}" ] && return 0
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1
}
have_command() { command -v "$1" >/dev/null 2>&1; }
# The relay's compiled readings (gateway/relay/_plain.c) are built by every install: a C
# compiler with the C library's headers, and the headers of the Python that runs keygate.
have_compiler() { have_command cc && [ -e /usr/include/stdio.h ]; }
have_python_headers() {
    "${PYTHON:-python3}" -c 'import os.path, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        2>/dev/null
}
have_chromium() {
    [ -n "${KEYGATE_TEST_CHROMIUM:-}" ] && [ -x "${KEYGATE_TEST_CHROMIUM}" ] && return 0
    [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1
}

# Arguments name the Debian packages wanted (`make demo` needs only postgresql and
# redis-server); without arguments, everything `make test` uses.
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(postgresql redis-server nginx chromium nodejs curl openssl caddy)
missing=()
for package in "${wanted[@]}"; do
    case "$package" in
        postgresql) have_postgres || missing+=(postgresql) ;;
        redis-server) have_redis || missing+=(redis-server) ;;
        nginx) have_nginx || missing+=(nginx) ;;
        chromium) have_chromium || missing+=(chromium) ;;
        nodejs) have_command node || missing+=(nodejs) ;;
        gcc) have_compiler || missing+=(gcc libc6-dev) ;;
        python3-dev) have_python_headers || missing+=(python3-dev) ;;
        curl | openssl | caddy | wrk | podman | runc | debootstrap)
            have_command "$package" || missing+=("$package") ;;
        *) echo "ensure-packages: unknown package $package" >&2; exit 2 ;;
    esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "keygate needs: ${missing[*]} (install them, or set KEYGATE_TEST_PG_BINDIR," \
        "KEYGATE_TEST_NGINX, KEYGATE_TEST_CHROMIUM)" >&2
    exit 1
fi
echo "installing the packages the suite drives: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
