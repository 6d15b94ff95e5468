#!/usr/bin/env bash
# Print how many module versions (.mod files under cache/download) the
# go command fetches for testdata/realworld into a fresh, empty GOMODCACHE,
# using the go command's own resolution: `go mod download`, then
# `go list -deps -test ./...` for linux, windows and darwin.
# Needs the real module proxy (GOPROXY, default https://proxy.golang.org);
# the committed go.sum is complete, so the checksum database is not asked.
# Details (zip count) go to stderr; stdout is just the number.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export GOENV=off GOTOOLCHAIN=local GOFLAGS=-modcacherw
export GOMODCACHE="$tmp/modcache"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"

cd "$root/testdata/realworld"
go mod download
for os in linux windows darwin; do
	GOOS=$os go list -deps -test ./... >/dev/null
done

dl="$GOMODCACHE/cache/download"
mods=$(find "$dl" -path "$dl/sumdb" -prune -o -type f -name '*.mod' -print | wc -l)
zips=$(find "$dl" -path "$dl/sumdb" -prune -o -type f -name '*.zip' -print | wc -l)
echo "realworld: $mods module versions (.mod), $zips with zips" >&2
echo "$mods"
