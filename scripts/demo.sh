#!/usr/bin/env bash
# ocigo end to end on the fixture project (testdata/project), the way it is
# meant to be used across an air gap:
#
#   0. install what is missing (apt-get: docker-registry, curl, ...)
#   1. build ocigo (release; OCIGO_BUILD_PROFILE=debug or OCIGO_BIN=... to change)
#   2. serve the fixture modules (testdata/modules) as a file:// GOPROXY
#   3. start a local registry (docker-registry on 127.0.0.1)
#   4. ocigo pack   testdata/project -> oci:<layout>:v1   (the "connected" side)
#   5. ocigo push   oci:<layout>:v1  -> <registry>/demo/project:v1
#   6. ocigo key generate (a cosign-format key pair, password from
#      COSIGN_PASSWORD), then ocigo sign the registry copy with it
#   7. ocigo inspect the registry copy (shows the signature attached)
#   8. ocigo pull --verify-key cosign.pub <registry>/demo/project:v1 -> an
#                   empty GOMODCACHE, with a fresh content store (the
#                   "offline" side): the signature is checked first
#   9. in a network namespace with no network (`unshare -n`, needs root),
#      GOPROXY=off, default GOSUMDB: go build, go test, go mod verify,
#      go list -m all, go run.
#
# Exits non-zero on any failure; removes everything it made (KEEP_TMP=1
# keeps the scratch directory).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

step() { printf '\n=== %s\n' "$*" >&2; }
run() {
	printf '$ %s\n' "$*" >&2
	"$@"
}

started=$(now_ns)
init_tmp ocigo-demo
tmp=$OCIGO_TMP

step "1. build ocigo"
ocigo=$(build_ocigo)
note "$ocigo ($("$ocigo" --version))"

step "2. fixture module proxy"
run python3 "$OCIGO_ROOT/scripts/fixture-proxy.py" "$tmp/proxy"

step "3. local registry"
start_registry "$tmp/registry" >/dev/null
registry=$REGISTRY_ADDR
note "docker-registry listening on $registry (pid $REGISTRY_PID)"

cp -r "$OCIGO_ROOT/testdata/project" "$tmp/project"
layout="oci:$tmp/layout:v1"
remote="$registry/demo/project:v1"

step "4. pack (connected side: resolves through the file:// proxy)"
# The go command pack runs resolves the fixture modules from the file://
# proxy only. GONOSUMDB rather than GOSUMDB=off: the fixtures are unknown
# to the checksum database, every other path would still be checked (and
# the committed go.sum is complete, so nothing is looked up at all).
run env GOENV=off GOTOOLCHAIN=local GOFLAGS= \
	GOPROXY="file://$tmp/proxy" GONOSUMDB=example.com \
	"$ocigo" --quiet --store "$tmp/store-pack" pack "$tmp/project" -o "$layout"
cmp -s "$OCIGO_ROOT/testdata/project/go.sum" "$tmp/project/go.sum" ||
	die "pack changed the project's go.sum"

step "5. push the layout to the registry"
run "$ocigo" --quiet --store "$tmp/store-pack" push "$layout" "$remote"

step "6. make a signing key and sign the registry copy"
# The password would come from a prompt; the demo sets it (cosign does the same).
export COSIGN_PASSWORD=demo-password
run "$ocigo" key generate --output-prefix "$tmp/cosign"
run "$ocigo" --quiet --store "$tmp/store-pack" sign --key "$tmp/cosign.key" "$remote"

step "7. inspect the registry copy"
out=$(run "$ocigo" --quiet --store "$tmp/store-pull" inspect "$remote")
printf '%s\n' "$out"
grep -q 'signatures: 1 attached' <<<"$out" || die "inspect does not show the signature"

step "8. pull into an empty GOMODCACHE, verifying the signature first (offline side: fresh store)"
run "$ocigo" --quiet --store "$tmp/store-pull" pull "$remote" \
	--verify-key "$tmp/cosign.pub" --gomodcache "$tmp/gomodcache"

step "9. offline go commands (unshare -n, GOPROXY=off, default GOSUMDB)"
offline() {
	printf '$ unshare -n go %s\n' "$*" >&2
	go_offline "$tmp/project" "$tmp/gomodcache" "$@"
}
# Sanity: the namespace really has no network.
if as_root unshare -n -- curl -s --max-time 2 -o /dev/null "http://$registry/v2/"; then
	die "unshare -n still reaches $registry: the offline steps would prove nothing"
fi
offline build ./...
offline test -count=1 ./...
offline mod verify
offline list -m all
out=$(offline run .)
printf '%s\n' "$out"
[[ -n $out ]] || die "go run printed nothing"

step "demo passed in $(secs_since "$started") s"
