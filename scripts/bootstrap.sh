#!/usr/bin/env bash
# Installs what vmcp-keepalive needs on a machine that has only Node (>= 20) and npm:
# Debian's redis-server (and, with --test, the test tools: prometheus for promtool, chromium),
# pnpm, and the workspace dependencies. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_tools=0
[[ "${1:-}" == "--test" ]] && want_test_tools=1

PNPM_VERSION=10.34.8
apt_packages=()
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
if (( want_test_tools )); then
  command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
fi

if (( ${#apt_packages[@]} > 0 )); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "bootstrap: need root (or sudo) to install: ${apt_packages[*]}" >&2; exit 1
      fi
    fi
    echo "bootstrap: installing ${apt_packages[*]} (apt-get)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "bootstrap: please install ${apt_packages[*]} (no apt-get here; e.g. brew install redis)" >&2
    exit 1
  fi
fi

# Debian's package may start a redis-server on 6379 where an init system exists; we never use it.
if ! command -v pnpm >/dev/null 2>&1 || [[ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]]; then
  # corepack's signature check fails against some registries; a global npm install does not.
  echo "bootstrap: installing pnpm@$PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION"
fi

pnpm install --frozen-lockfile --reporter=append-only
