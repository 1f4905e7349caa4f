#!/usr/bin/env bash
# What the browser test (tests/browser.rs) needs: Debian's Chromium and playwright-core from
# the npm registry, which drives it (never a browser download: Playwright's own browsers come
# from hosts CI cannot reach).
#
#   scripts/browser.sh install    installs what is missing, prints the Chromium to use
#   scripts/browser.sh check      prints the Chromium to use, or exits 1 naming what is missing
#
# Environment (defaults):
#   RACCOON_CHROMIUM=/usr/bin/chromium   the browser; `install` apt-installs Debian's `chromium`
#                                        there when it is missing and this runs as root
# playwright-core is installed with `npm ci` into tests/browser/node_modules (version pinned by
# tests/browser/package-lock.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRIVER_DIR="$ROOT/tests/browser"
CHROMIUM="${RACCOON_CHROMIUM:-/usr/bin/chromium}"

log() { printf 'browser: %s\n' "$*" >&2; }

missing() {
  local what=()
  [ -x "$CHROMIUM" ] || what+=("Chromium at $CHROMIUM (Debian: apt-get install chromium)")
  command -v node >/dev/null || what+=("node (Node.js 20+)")
  [ -f "$DRIVER_DIR/node_modules/playwright-core/package.json" ] ||
    what+=("playwright-core (cd tests/browser && npm ci)")
  printf '%s\n' "${what[@]+"${what[@]}"}"
}

cmd_check() {
  local gaps
  gaps="$(missing)"
  if [ -n "$gaps" ]; then
    log "missing:"
    printf '  %s\n' "$gaps" >&2
    exit 1
  fi
  echo "$CHROMIUM"
}

cmd_install() {
  if [ ! -x "$CHROMIUM" ] && [ "$CHROMIUM" = /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      local t0=$SECONDS
      log "installing Debian's chromium (about a minute)"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
      log "chromium installed in $((SECONDS - t0))s"
    else
      log "Chromium is missing and this is not root with apt-get: install Debian's chromium, or set RACCOON_CHROMIUM"
    fi
  fi
  if [ ! -f "$DRIVER_DIR/node_modules/playwright-core/package.json" ] && command -v npm >/dev/null; then
    log "installing playwright-core (npm ci in tests/browser)"
    (cd "$DRIVER_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  cmd_check
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  *)
    echo "usage: scripts/browser.sh install|check" >&2
    exit 2
    ;;
esac
