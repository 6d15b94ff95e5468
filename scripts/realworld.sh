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
# GOSUMDB at its default: pack carries the checksum database's records
# and tiles of every module version (through GOPROXY's /sumdb/), checked
# against go.sum; the offline part below uses them with an emptied go.sum.
t=$(now_ns)
env -u GOSUMDB GOENV=off GOTOOLCHAIN=local GOFLAGS= \
	GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
	"$ocigo" --json --store "$tmp/store-pack" pack "$tmp/project" -o "$remote" >"$tmp/pack.json"
note "packed $(json_get "$tmp/pack.json" 'd["modules"]') module versions, $(json_get "$tmp/pack.json" 'd["zips"]') zips in $(secs_since "$t") s"
note "checksum database: $(json_get "$tmp/pack.json" 'd["sumdb"]["records"]') records, $(json_get "$tmp/pack.json" 'd["sumdb"]["tiles"]') tiles, fetched in $(json_get "$tmp/pack.json" 'round(d["sumdb"]["fetch_seconds"], 3)') s"
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
"$ocigo" --json --store "$tmp/store-pull" pull "$remote" --gomodcache "$tmp/gomodcache" \
	--gopath "$tmp/gopath" >"$tmp/pull.json"
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

log "offline, go.sum emptied: the go command checks every module against the checksum database data ocigo carried"
cp -r "$tmp/project" "$tmp/project-nosum"
: >"$tmp/project-nosum/go.sum"
go_base_env
(cd "$tmp/project-nosum" && as_root unshare -n -- env -i "${GO_BASE_ENV[@]}" \
	"GOMODCACHE=$tmp/gomodcache" "GOPATH=$tmp/gopath" GOPROXY=off GOFLAGS=-mod=mod \
	go build ./...) >"$tmp/go.out" 2>&1 || {
	cat "$tmp/go.out" >&2
	die "offline go build with an emptied go.sum failed"
}
lines=$(grep -c . "$tmp/project-nosum/go.sum" || true)
((lines > 0)) || die "the go command wrote no go.sum lines"
note "go build -mod=mod: $lines go.sum lines written from the carried records, offline"

log "checksum database config against schemas/sumdb-config.v1.schema.json"
python3 - "$tmp/store-pull" "$OCIGO_ROOT/schemas/sumdb-config.v1.schema.json" <<'PY'
import json, pathlib, sys
from jsonschema import Draft202012Validator
store, schema = pathlib.Path(sys.argv[1]), json.loads(pathlib.Path(sys.argv[2]).read_text())
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
configs = []
for blob in (store / "blobs" / "sha256").iterdir():
    if blob.stat().st_size > 64 << 20:
        continue
    try:
        doc = json.loads(blob.read_bytes())
    except ValueError:
        continue
    if isinstance(doc, dict) and doc.get("artifactType") == "application/vnd.ocigo.sumdb.v1":
        cfg = doc["config"]["digest"].split(":", 1)[1]
        configs.append(json.loads((store / "blobs" / "sha256" / cfg).read_bytes()))
if not configs:
    sys.exit("no checksum-database manifest in the pulled store")
for c in configs:
    errors = list(validator.iter_errors(c))
    if errors:
        sys.exit(f"sumdb config invalid: {errors[0].message}")
print(f"  {len(configs)} checksum-database config(s) valid", file=sys.stderr)
PY

log "realworld passed: $modules module versions, in $(secs_since "$started") s"
