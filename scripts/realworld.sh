#!/usr/bin/env bash
# Real-world check through the real Go module proxy: pack
# testdata/realworld (cobra, prometheus client_golang, golang.org/x/...;
# ~460 module versions) into a local registry, pull it into an empty
# GOMODCACHE with a fresh content store, then build and verify it in a
# network namespace with no network (`unshare -n`, needs root) with
# GOPROXY=off, the default GOSUMDB and GOFLAGS empty. Asserts the closure
# has at least 50 module versions. Runs in CI.
#
# Needs: the module proxy (GOPROXY, default https://proxy.golang.org),
# docker-registry, root. OCIGO_BUILD_PROFILE / OCIGO_BIN as in lib.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

min_modules=50
started=$(now_ns)
init_tmp ocigo-realworld
tmp=$OCIGO_TMP

ocigo=$(build_ocigo)
start_registry "$tmp/registry" >/dev/null
remote="$REGISTRY_ADDR/realworld/app:v1"
cp -r "$OCIGO_ROOT/testdata/realworld" "$tmp/project"

log "pack testdata/realworld -> $remote (through ${GOPROXY:-https://proxy.golang.org})"
# GOSUMDB=off is acceptable here only because testdata/realworld/go.sum is
# complete (the go command never needs to ask the checksum database) and
# ocigo itself checks every .mod and zip it packs against that go.sum:
# a module whose hash is not in go.sum fails the pack. sum.golang.org is
# not reachable from every machine this runs on.
t=$(now_ns)
env GOENV=off GOTOOLCHAIN=local GOFLAGS= GOSUMDB=off \
	GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
	"$ocigo" --json --store "$tmp/store-pack" pack "$tmp/project" -o "$remote" >"$tmp/pack.json"
note "packed $(json_get "$tmp/pack.json" 'd["modules"]') module versions, $(json_get "$tmp/pack.json" 'd["zips"]') zips in $(secs_since "$t") s"
cmp -s "$OCIGO_ROOT/testdata/realworld/go.sum" "$tmp/project/go.sum" ||
	die "pack changed the project's go.sum"
cmp -s "$OCIGO_ROOT/testdata/realworld/go.mod" "$tmp/project/go.mod" ||
	die "pack changed the project's go.mod"

log "inspect $remote"
"$ocigo" --json --store "$tmp/store-pull" inspect --modules "$remote" >"$tmp/inspect.json"
modules=$(json_get "$tmp/inspect.json" 'len(d["modules"])')
zips=$(json_get "$tmp/inspect.json" 'sum(1 for m in d["modules"] if m["zip_size"] is not None)')
note "$modules module versions ($zips with zips) in $(json_get "$tmp/inspect.json" 'd["manifests"]') manifest(s), $(human_bytes "$(json_get "$tmp/inspect.json" 'd["unique_bytes"]')")"
((modules >= min_modules)) ||
	die "the closure has only $modules module versions (expected >= $min_modules)"

log "pull $remote into an empty GOMODCACHE (fresh store)"
t=$(now_ns)
"$ocigo" --json --store "$tmp/store-pull" pull "$remote" --gomodcache "$tmp/gomodcache" >"$tmp/pull.json"
note "pulled $(json_get "$tmp/pull.json" 'd["modules"]') module versions, $(human_bytes "$(json_get "$tmp/pull.json" 'd["bytes_fetched"]')") fetched in $(secs_since "$t") s"

log "offline: unshare -n, GOPROXY=off, default GOSUMDB, GOFLAGS="
for args in "build ./..." "vet ./..." "mod verify" "list -m all"; do
	note "go $args"
	# shellcheck disable=SC2086 # split the argument list on purpose
	go_offline "$tmp/project" "$tmp/gomodcache" $args >"$tmp/go.out" 2>&1 || {
		cat "$tmp/go.out" >&2
		die "offline go $args failed"
	}
done
listed=$(grep -c . "$tmp/go.out" || true)
note "go list -m all: $listed modules in the build list, all resolved offline"

log "realworld passed: $modules module versions, in $(secs_since "$started") s"
