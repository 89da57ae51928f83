#!/usr/bin/env bash
# Runs the go command on this module offline, against the sources Debian installs under
# /usr/share/gocode/src (golang-github-gomodule-redigo-dev, golang-github-mna-redisc-dev,
# golang-github-fzambia-sentinel-dev), with
# Go 1.19 (golang-1.19-go). GOPATH mode: Debian's redisc ships no go.mod, and a module-mode
# `replace` must point at a directory that has one. The module is linked into a private GOPATH
# (.gopath/, ignored by git) under its import path.
#   bash clients/go/go-offline.sh test ./...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
go="${GO:-}"
if [[ -z "$go" ]]; then
  if [[ -x /usr/lib/go-1.19/bin/go ]]; then go=/usr/lib/go-1.19/bin/go; else go="$(command -v go || true)"; fi
fi
if [[ -z "$go" ]]; then
  echo "go-offline: no Go found: install golang-1.19-go (bash scripts/bootstrap.sh --test) or set GO" >&2
  exit 1
fi
for src in github.com/gomodule/redigo github.com/mna/redisc github.com/FZambia/sentinel; do
  if [[ ! -d "/usr/share/gocode/src/$src" ]]; then
    echo "go-offline: /usr/share/gocode/src/$src missing: apt-get install golang-github-gomodule-redigo-dev golang-github-mna-redisc-dev golang-github-fzambia-sentinel-dev" >&2
    exit 1
  fi
done
gopath="$here/.gopath"
link="$gopath/src/github.com/vmcp-keepalive/clients/go"
mkdir -p "$(dirname "$link")"
ln -sfn "$here" "$link"
export GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOPROXY=off GOFLAGS= GOCACHE="${GOCACHE:-$gopath/cache}"
cd "$link"
exec "$go" "$@"
