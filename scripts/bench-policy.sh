#!/usr/bin/env bash
# Policy check benchmark: the real-world closure (testdata/realworld, as
# scripts/realworld.sh packs it) against the full Go vulnerability database
# (golang.org/x/vulndb's data/osv at VULNDB_VERSION, 4,789 records, from the
# module proxy), once the bundle is local: pack into a local registry,
# copy into an OCI layout on local disk, pack + pull the database, then
# time `ocigo policy check` (modules, coverage, vulnerabilities, age) RUNS
# times against the layout and against the registry on 127.0.0.1, and
# print the medians. Release build by default (OCIGO_BUILD_PROFILE, OCIGO_BIN).
#
#   scripts/bench-policy.sh            # RUNS=5
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
VULNDB_TIME=2026-11-05T23:49:57Z
runs=${RUNS:-5}
init_tmp ocigo-bench-policy
tmp=$OCIGO_TMP
ocigo=$(build_ocigo)
start_registry "$tmp/registry" >/dev/null
remote="$REGISTRY_ADDR/realworld/app:v1"
cp -r "$OCIGO_ROOT/testdata/realworld" "$tmp/project"

log "pack testdata/realworld -> $remote and oci:$tmp/layout:v1"
env GOENV=off GOTOOLCHAIN=local GOFLAGS= GOSUMDB=off \
	GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
	"$ocigo" --quiet --store "$tmp/store" pack "$tmp/project" -o "$remote" \
	--created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
"$ocigo" --quiet --store "$tmp/store" push "$remote" "oci:$tmp/layout:v1" >&2

log "golang.org/x/vulndb@$VULNDB_VERSION (module proxy) -> pack vulndb -> pull --vulndb"
(cd "$tmp" && env GOENV=off GOTOOLCHAIN=local GOFLAGS=-mod=mod GOMODCACHE="$tmp/gomodcache" \
	GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOSUMDB=off \
	go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" >"$tmp/vulndb.json")
osv=$(json_get "$tmp/vulndb.json" 'd["Dir"]')/data/osv
note "$(find "$osv" -name '*.json' | wc -l) OSV records"
"$ocigo" --quiet --store "$tmp/store" pack vulndb "$osv" --modified "$VULNDB_TIME" -o "oci:$tmp/dbdisk:db" >&2
"$ocigo" --quiet --store "$tmp/store" pull "oci:$tmp/dbdisk:db" --vulndb "$tmp/vulndb" >&2

cat >"$tmp/policy.yaml" <<POLICY
version: 1
coverage:
  platforms: [linux/amd64]
modules:
  deny:
    - path: github.com/gogo/*
      reason: unmaintained
  retracted: warn
vulnerabilities:
  database: $tmp/vulndb
age:
  max: 30d
POLICY

bench() {
	local what=$1 src=$2 times=() i code
	for ((i = 0; i < runs; i++)); do
		code=0
		MEASURE_STDOUT=$tmp/out.json measure "$ocigo" --store "$tmp/store" policy check \
			--policy "$tmp/policy.yaml" --project "$tmp/project" --format json "$src" || code=$?
		((code <= 1)) || die "policy check exited $code"
		times+=("$MEASURE_SECS")
	done
	note "$what: median $(median "${times[@]}") s over $runs runs (peak RSS $((MEASURE_KIB / 1024)) MiB; runs: ${times[*]})"
}
log "ocigo policy check ($runs runs each)"
bench "layout on local disk" "oci:$tmp/layout:v1"
bench "registry on 127.0.0.1" "$remote"
note "$(json_get "$tmp/out.json" 'sum(1 for r in d["rules"] for f in r["findings"] if f["level"]=="error")') violations; $(json_get "$tmp/out.json" '[r["summary"] for r in d["rules"] if r["rule"]=="vulnerabilities"][0]')"
