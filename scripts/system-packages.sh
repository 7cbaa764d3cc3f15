#!/bin/sh
# Make sure the Debian packages the test suite needs are installed; `make test` runs this first.
#
#   every need present      prints nothing, exits 0, never calls apt-get
#   something missing       as root, or with passwordless sudo, where apt-get exists:
#                           `apt-get update -qq` once, then installs exactly the missing packages
#   cannot install          prints one line naming the command to run and exits 1
#
# Environment, for tests and unusual layouts (not BASTION_*: bastion refuses unknown BASTION_
# variables, and these would reach the test suite's environment):
#   SYSTEM_PACKAGES_INSTALL=no    only check; never install
#   SYSTEM_PACKAGES_CHROMIUM      Chromium's path (default /usr/bin/chromium)
#   SYSTEM_PACKAGES_PG_BINDIRS    glob of PostgreSQL bin directories (default
#                                 /usr/lib/postgresql/*/bin, where Debian keeps pg_ctl and initdb)
#   SYSTEM_PACKAGES_PROMETHEUS    Prometheus' path (default /usr/bin/prometheus)
#   SYSTEM_PACKAGES_PROMTOOL      promtool's path (default /usr/bin/promtool)
#   SYSTEM_PACKAGES_ALERTMANAGER  Alertmanager's path (default /usr/bin/prometheus-alertmanager)
#   SYSTEM_PACKAGES_AMTOOL        amtool's path (default /usr/bin/amtool)
set -eu

# The needs, one line each: need <Debian package> <check> <what the check looks at>.
needs() {
    # Chromium: the console tests drive it headless through Playwright.
    need chromium executable "${SYSTEM_PACKAGES_CHROMIUM:-/usr/bin/chromium}"
    # PostgreSQL server binaries: the store tests start a throwaway cluster (pytest-postgresql).
    need postgresql pg_server "${SYSTEM_PACKAGES_PG_BINDIRS:-/usr/lib/postgresql/*/bin}"
    # Prometheus and promtool: the deploy tests run `promtool check rules`, `promtool test rules`
    # and `promtool check metrics` on a scraped /metrics.
    need prometheus executable "${SYSTEM_PACKAGES_PROMETHEUS:-/usr/bin/prometheus}"
    need prometheus executable "${SYSTEM_PACKAGES_PROMTOOL:-/usr/bin/promtool}"
    # Alertmanager and amtool: the deploy tests run `amtool check-config` on the example config.
    need prometheus-alertmanager executable \
        "${SYSTEM_PACKAGES_ALERTMANAGER:-/usr/bin/prometheus-alertmanager}"
    need prometheus-alertmanager executable "${SYSTEM_PACKAGES_AMTOOL:-/usr/bin/amtool}"
}

# -- checks: exit 0 when the need is met --------------------------------------------------------

executable() {
    [ -f "$1" ] && [ -x "$1" ]
}

# A directory matching the glob $1 holds both pg_ctl and initdb.
pg_server() (
    IFS='
'
    # shellcheck disable=SC2086  # $1 is a glob: expanding it here is the point
    for dir in $1; do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
            exit 0
        fi
    done
    exit 1
)

# -- machinery ----------------------------------------------------------------------------------

missing=""

need() {
    package=$1
    check=$2
    shift 2
    if ! "$check" "$@"; then
        case " $missing " in
            *" $package "*) ;;
            *) missing="${missing:+$missing }$package" ;;
        esac
    fi
}

# "a", "a and b", "a, b and c"
spoken() {
    out=""
    rest=$#
    for word in "$@"; do
        rest=$((rest - 1))
        if [ -z "$out" ]; then
            out=$word
        elif [ "$rest" -eq 0 ]; then
            out="$out and $word"
        else
            out="$out, $word"
        fi
    done
    printf '%s' "$out"
}

# The one line when we cannot (or could not) install, then stop.
give_up() {
    prefix="sudo "
    if [ "$(id -u)" -eq 0 ]; then
        prefix=""
    fi
    # shellcheck disable=SC2086  # package names are single words
    printf 'make test needs %s: run %sapt-get install -y %s\n' \
        "$(spoken $missing)" "$prefix" "$missing" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive "$@"
    else
        sudo -n DEBIAN_FRONTEND=noninteractive "$@"
    fi
}

can_install() {
    [ "${SYSTEM_PACKAGES_INSTALL:-yes}" != no ] || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" -eq 0 ] && return 0
    command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1
}

needs
[ -n "$missing" ] || exit 0
can_install || give_up

printf 'make test: installing %s with apt-get\n' "$missing" >&2
as_root apt-get update -qq || give_up
# shellcheck disable=SC2086  # package names are single words
as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null || give_up

installed=$missing
missing=""
needs
if [ -n "$missing" ]; then
    printf 'make test: installed %s, yet %s still missing: see scripts/system-packages.sh\n' \
        "$installed" "$missing" >&2
    exit 1
fi
