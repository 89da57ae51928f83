#!/usr/bin/env bash
# Installs what vmcp-keepalive needs on a machine that has only Node (>= 20) and npm: Debian's
# redis-server, pnpm, and the workspace dependencies; with --test also the test tools that
# `pnpm test` needs (prometheus for promtool, chromium for the Bull Board test, and Go 1.19 with
# Debian's redigo, redisc and sentinel sources, which the Go client in clients/go builds against offline).
# `npm run demo`
# and `.ci/run` both pass --test, so the README's second command works after its first.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_tools=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test_tools=1 ;;
    *) echo "bootstrap: unknown argument $arg (usage: bootstrap.sh [--test])" >&2; exit 2 ;;
  esac
done

PNPM_VERSION=10.34.8
apt_packages=()
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
if (( want_test_tools )); then
  command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  [[ -x /usr/lib/go-1.19/bin/go ]] || apt_packages+=(golang-1.19-go)
  [[ -d /usr/share/gocode/src/github.com/gomodule/redigo ]] || apt_packages+=(golang-github-gomodule-redigo-dev)
  [[ -d /usr/share/gocode/src/github.com/mna/redisc ]] || apt_packages+=(golang-github-mna-redisc-dev)
  [[ -d /usr/share/gocode/src/github.com/FZambia/sentinel ]] || apt_packages+=(golang-github-fzambia-sentinel-dev)
  # The TLS tests make a private CA with openssl.
  command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
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
  elif command -v redis-server >/dev/null 2>&1; then
    # Only test tools are missing: the demo runs without them; `pnpm test` needs them.
    echo "bootstrap: no apt-get here; install ${apt_packages[*]} yourself before \`pnpm test\` (e.g. brew install prometheus chromium; Go 1.19 and the redigo and redisc sources: see clients/go/README.md)" >&2
  else
    echo "bootstrap: please install ${apt_packages[*]} (no apt-get here; e.g. brew install redis)" >&2
    exit 1
  fi
fi

# Debian's package may start a redis-server on 6379 where an init system exists; we never use it.
if ! command -v pnpm >/dev/null 2>&1 || [[ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]]; then
  # corepack's signature check fails against some registries; a global npm install does not.
  echo "bootstrap: installing pnpm@$PNPM_VERSION"
  # Node from Debian or NodeSource has its global prefix under /usr: root's to write.
  npm_sudo=""
  if [[ ! -w "$(npm prefix -g)/lib" && $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then npm_sudo="sudo"; fi
  $npm_sudo npm install -g --silent "pnpm@$PNPM_VERSION"
fi

pnpm install --frozen-lockfile --reporter=append-only
