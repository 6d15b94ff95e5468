#!/usr/bin/env bash
# Benchmark ocigo's transfers on the real-world closure (testdata/realworld,
# ~460 module versions, several hundred small blobs), all in one run, and
# print a Markdown table (also written to target/bench-transport.md):
#
#  (a) ocigo pull into an empty GOMODCACHE from a local registry, over
#      plain loopback and through a proxy of this script that adds
#      BENCH_DELAY_MS (default 25) to every request (scripts/delay-proxy.py,
#      loopback only). Aim: delayed / plain at most 1.3x (latency hidden).
#  (b) copying the same OCI layout to an empty repository of the same
#      registry, plain and delayed: ocigo push, crane push (go-containerregistry)
#      and oras cp --from-oci-layout. Aim: ocigo no slower than the faster.
#  (c) requests per blob, counted in the registry's access log.
#
# crane and oras are built here with `go install` into
# target/bench-tools (BENCH_CRANE_VERSION, BENCH_ORAS_VERSION; the Go module
# proxy must be reachable). They are benchmark-only: never used by tests.
# Median of BENCH_REPS (default 3) runs each, interleaved.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

reps=${BENCH_REPS:-3}
delay_ms=${BENCH_DELAY_MS:-25}
concurrency=${OCIGO_CONCURRENCY:-}
crane_version=${BENCH_CRANE_VERSION:-v0.20.6}
oras_version=${BENCH_ORAS_VERSION:-v1.3.0}
proxy=${GOPROXY:-https://proxy.golang.org}
out_md=$OCIGO_ROOT/target/bench-transport.md
tools=$OCIGO_ROOT/target/bench-tools

init_tmp ocigo-bench-transport
tmp=$OCIGO_TMP
ocigo=$(build_ocigo)
REGISTRY_NO_ACCESSLOG=false start_registry "$tmp/registry" >/dev/null
registry=$REGISTRY_ADDR
go_base_env

log "building crane $crane_version and oras $oras_version into $tools"
mkdir -p "$tools"
for spec in "github.com/google/go-containerregistry/cmd/crane@$crane_version" \
	"oras.land/oras/cmd/oras@$oras_version"; do
	name=${spec##*/}
	name=${name%@*}
	if [[ ! -x $tools/$name-${spec##*@} ]]; then
		env -i "${GO_BASE_ENV[@]}" GOPROXY="$proxy" GOBIN="$tools/bin" go install "$spec" >&2 ||
			die "go install $spec failed"
		mv "$tools/bin/$name" "$tools/$name-${spec##*@}"
	fi
done
crane=$tools/crane-$crane_version
oras=$tools/oras-$oras_version

log "starting the delay proxy (+${delay_ms} ms per request) in front of $registry"
dport=$(free_port)
python3 "$OCIGO_ROOT/scripts/delay-proxy.py" "$dport" "$registry" "$delay_ms" &
dpid=$!
add_cleanup "kill $dpid 2>/dev/null"
delayed=127.0.0.1:$dport
for _ in $(seq 50); do
	curl -fsS "http://$delayed/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done

log "pack the closure (testdata/realworld) through $proxy"
cp -r "$OCIGO_ROOT/testdata/realworld" "$tmp/p1"
env -i "${GO_BASE_ENV[@]}" GOSUMDB=off GOPROXY="$proxy" \
	"$ocigo" --json --store "$tmp/store-pack" pack "$tmp/p1" -o "oci:$tmp/layout:v1" >"$tmp/pack.json"
modules=$(json_get "$tmp/pack.json" 'd["modules"]')
"$ocigo" --json --store "$tmp/store-pack" push "oci:$tmp/layout:v1" "$registry/bench/seed:v1" >"$tmp/seed.json"
blobs=$(json_get "$tmp/seed.json" 'd["copy"]["blobs"]')
bytes=$(json_get "$tmp/seed.json" 'd["copy"]["bytes_total"]')
note "$modules module versions, $blobs blobs, $(human_bytes "$bytes")"

cflag=()
[[ -n $concurrency ]] && cflag=(--concurrency "$concurrency")

declare -A secs reqs
n=0
# run KEY CMD...: time CMD, count the registry requests it made.
run() {
	local key=$1 before
	shift
	before=$(count_registry_requests "$tmp/registry")
	MEASURE_STDOUT=/dev/null measure "$@"
	secs[$key]+="$MEASURE_SECS "
	reqs[$key]=$(($(count_registry_requests "$tmp/registry") - before))
}

for ((r = 1; r <= reps; r++)); do
	log "round $r of $reps"
	for via in plain delayed; do
		host=$registry
		[[ $via == delayed ]] && host=$delayed
		n=$((n + 1))
		rm_tree "$tmp/run" && mkdir -p "$tmp/run"
		run "pull-$via" "$ocigo" --quiet --store "$tmp/run/store" pull "${cflag[@]}" \
			"$host/bench/seed:v1" --gomodcache "$tmp/run/gomodcache"
		run "ocigo-$via" "$ocigo" --quiet --store "$tmp/run/store" push "${cflag[@]}" \
			"oci:$tmp/layout:v1" "$host/bench/ocigo-$n:v1"
		run "crane-$via" "$crane" push --insecure "$tmp/layout" "$host/bench/crane-$n:v1"
		run "oras-$via" "$oras" cp --from-oci-layout --to-plain-http \
			"$tmp/layout:v1" "$host/bench/oras-$n:v1"
	done
done

# shellcheck disable=SC2086 # secs[] holds space-separated runs: split on purpose
med() { median ${secs[$1]}; }
{
	echo "- closure: $modules module versions, $blobs blobs, $(human_bytes "$bytes")"
	echo "- delay: +$delay_ms ms per request (scripts/delay-proxy.py); median of $reps runs"
	echo "- ocigo $("$ocigo" --version | awk '{print $2}') (${OCIGO_BIN:+OCIGO_BIN=}${OCIGO_BIN:-${OCIGO_BUILD_PROFILE:-release}}, concurrency ${concurrency:-default}), crane $crane_version, oras $oras_version, $(nproc) cores, $(date -u +%F)"
	echo
	echo "| What | Plain loopback | +$delay_ms ms per request | Delayed / plain | Requests per blob |"
	echo "|---|---:|---:|---:|---:|"
	for k in pull ocigo crane oras; do
		case $k in
		pull) d="ocigo pull into an empty GOMODCACHE" ;;
		ocigo) d="ocigo push (layout to registry)" ;;
		crane) d="crane push (layout to registry)" ;;
		oras) d="oras cp --from-oci-layout" ;;
		esac
		p=$(med "$k-plain") q=$(med "$k-delayed")
		echo "| $d | $p s | $q s | $(ratio "$q" "$p")x | $(awk -v a="${reqs[$k-plain]}" -v b="$blobs" 'BEGIN { printf "%.2f", a / b }') |"
	done
} | tee "$out_md"
