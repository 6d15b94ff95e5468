#!/usr/bin/env bash
# Benchmark ocigo on the real-world closure (testdata/realworld, ~460
# module versions), all in one run, and print a Markdown table (also
# written to target/bench-modules.md):
#
#  (a) installing the closure into an empty GOMODCACHE:
#        ocigo pull from a local registry      (fresh OCIGO_STORE each run)
#        ocigo pull --no-extract from it       (the download area only)
#        ocigo pull from an oci: layout        (fresh OCIGO_STORE each run)
#        tar -xzf of a tar -czf of the same GOMODCACHE (what teams do today)
#        go mod download from a file:// proxy holding the same modules
#          (GOPROXY=file://<cache>/cache/download, GOSUMDB=off)
#      median of BENCH_REPS (default 3) runs each, interleaved;
#  (b) bytes that cross the gap for an update: `ocigo push` of a second
#      bundle (one module upgraded, default golang.org/x/sync to its next
#      version) to a registry holding the first, vs the whole tarball;
#  (c) peak memory (max RSS) of pack and pull.
#
# Needs the Go module proxy (for pack and the upgrade), docker-registry,
# GNU time. Builds ocigo in release mode (OCIGO_BUILD_PROFILE / OCIGO_BIN
# as in lib.sh). Everything runs on this machine: the registry is on
# loopback and the page cache is warm, so times measure ocigo's own work
# (hashing, unzipping, writing), not a network.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

reps=${BENCH_REPS:-3}
bump=${BENCH_BUMP_MODULE:-golang.org/x/sync}
proxy=${GOPROXY:-https://proxy.golang.org}
out_md=$OCIGO_ROOT/target/bench-modules.md


started=$(now_ns)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
init_tmp ocigo-bench
tmp=$OCIGO_TMP
ocigo=$(build_ocigo)
REGISTRY_NO_ACCESSLOG=false start_registry "$tmp/registry" >/dev/null
registry=$REGISTRY_ADDR
go_base_env

# The go command with a clean environment (GOENV=off, GOFLAGS empty).
gocmd() { env -i "${GO_BASE_ENV[@]}" "$@"; }

# The go command ocigo pack runs, wrapped to record each run's peak RSS.
cat >"$tmp/go-wrapper" <<EOF
#!/bin/sh
exec /usr/bin/time -f %M -a -o "$tmp/go-rss.log" "$(command -v go)" "\$@"
EOF
chmod +x "$tmp/go-wrapper"

# Peak RSS of one process itself (not its children): runs CMD (stdout to
# OUT), samples /proc/PID/status VmHWM (a high-water mark) every 5 ms and
# prints the last value in KiB; misses at most a peak in the final 5 ms.
cat >"$tmp/vmhwm.py" <<'EOF'
import subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    p = subprocess.Popen(sys.argv[2:], stdout=out)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
print(peak)
sys.exit(p.returncode)
EOF

# pack PROJECT DEST JSON: ocigo pack through the real proxy; sets
# PACK_SECS, PACK_KIB (ocigo's own peak RSS) and GO_RSS_KIB (the largest
# go command it ran). GOSUMDB=off only because go.sum is complete and
# ocigo checks every hash it packs against it (see scripts/realworld.sh).
pack() {
	: >"$tmp/go-rss.log"
	local t
	t=$(now_ns)
	PACK_KIB=$(python3 "$tmp/vmhwm.py" "$3" env -i "${GO_BASE_ENV[@]}" GOSUMDB=off \
		GOPROXY="$proxy" OCIGO_GO="$tmp/go-wrapper" \
		"$ocigo" --json --store "$tmp/store-pack" pack "$1" -o "$2")
	PACK_SECS=$(secs_since "$t")
	GO_RSS_KIB=$(sort -n "$tmp/go-rss.log" | tail -n 1)
}

# counts DIR: "<.mod files> mod, <.zip files> zips, <extracted dirs> dirs, <size>"
counts() {
	local dl=$1/cache/download mods zips dirs kib
	mods=$(find "$dl" -path "$dl/sumdb" -prune -o -type f -name '*.mod' -print | wc -l)
	zips=$(find "$dl" -path "$dl/sumdb" -prune -o -type f -name '*.zip' -print | wc -l)
	dirs=$(find "$1" -path "$1/cache" -prune -o -type d -name '*@*' -print | wc -l)
	kib=$(du -sk "$1" | cut -f1)
	echo "$mods .mod, $zips .zip, $dirs trees, $(human_bytes $((kib * 1024)))"
}

fresh() { rm_tree "$tmp/run" && mkdir -p "$tmp/run"; }

# ---------------------------------------------------------------- bundles
log "pack bundle 1 (testdata/realworld) through $proxy"
cp -r "$OCIGO_ROOT/testdata/realworld" "$tmp/p1"
pack "$tmp/p1" "oci:$tmp/layout:v1" "$tmp/pack1.json"
pack1_secs=$PACK_SECS pack1_kib=$PACK_KIB pack1_go_kib=$GO_RSS_KIB
modules=$(json_get "$tmp/pack1.json" 'd["modules"]')
zips=$(json_get "$tmp/pack1.json" 'd["zips"]')
note "$modules module versions, $zips zips, ${pack1_secs} s"

log "push bundle 1 to an empty registry"
"$ocigo" --json --store "$tmp/store-pack" push "oci:$tmp/layout:v1" "$registry/bench/realworld:v1" >"$tmp/push1.json"
push1_bytes=$(json_get "$tmp/push1.json" 'd["copy"]["bytes_sent"]')
"$ocigo" --json --store "$tmp/store-pack" inspect "oci:$tmp/layout:v1" >"$tmp/inspect1.json"
bundle1_bytes=$(json_get "$tmp/inspect1.json" 'd["unique_bytes"]')

log "reference GOMODCACHE and tarball of bundle 1"
"$ocigo" --quiet --store "$tmp/store-ref" pull "$registry/bench/realworld:v1" --gomodcache "$tmp/ref1" >&2
tar -czf "$tmp/modcache-v1.tgz" -C "$tmp/ref1" .
tar1_bytes=$(stat -c %s "$tmp/modcache-v1.tgz")
ref1_counts=$(counts "$tmp/ref1")
note "$ref1_counts; tarball $(human_bytes "$tar1_bytes")"

# ---------------------------------------------------------------- (a)
declare -A secs kib desc
methods=(reg noext layout tar godl)
desc[reg]="ocigo pull from a local registry"
desc[noext]="ocigo pull --no-extract from a local registry"
desc[layout]="ocigo pull from an oci: layout"
desc[tar]="tar -xzf of a tar -czf of the same cache"
desc[godl]="go mod download from a file:// proxy"
declare -A result_counts
run_method() {
	local m=$1 gmc=$tmp/run/gomodcache
	fresh
	case $m in
	reg)
		MEASURE_STDOUT=/dev/null measure "$ocigo" --quiet --store "$tmp/run/store" \
			pull "$registry/bench/realworld:v1" --gomodcache "$gmc"
		;;
	noext)
		MEASURE_STDOUT=/dev/null measure "$ocigo" --quiet --store "$tmp/run/store" \
			pull "$registry/bench/realworld:v1" --gomodcache "$gmc" --no-extract
		;;
	layout)
		MEASURE_STDOUT=/dev/null measure "$ocigo" --quiet --store "$tmp/run/store" \
			pull "oci:$tmp/layout:v1" --gomodcache "$gmc"
		;;
	tar)
		mkdir -p "$gmc"
		measure tar -xzf "$tmp/modcache-v1.tgz" -C "$gmc"
		;;
	godl)
		measure env -i -C "$tmp/p1" "${GO_BASE_ENV[@]}" GOMODCACHE="$gmc" \
			GOPROXY="file://$tmp/ref1/cache/download" GOSUMDB=off GOFLAGS=-modcacherw \
			go mod download
		;;
	esac
}
for ((r = 1; r <= reps; r++)); do
	log "(a) run $r of $reps"
	for m in "${methods[@]}"; do
		run_method "$m"
		secs[$m]+="$MEASURE_SECS "
		kib[$m]=$(((${kib[$m]:-0} > MEASURE_KIB) ? ${kib[$m]:-0} : MEASURE_KIB))
		note "$(printf '%-45s %8s s %8s KiB' "${desc[$m]}" "$MEASURE_SECS" "$MEASURE_KIB")"
		if ((r == 1)); then
			result_counts[$m]=$(counts "$tmp/run/gomodcache")
		fi
	done
done
fresh

# ---------------------------------------------------------------- (b)
log "bundle 2: $bump upgraded by one version"
cp -r "$OCIGO_ROOT/testdata/realworld" "$tmp/p2"
old_version=$(cd "$tmp/p2" && gocmd GOMODCACHE="$tmp/gomodcache-get" GOPROXY="$proxy" go list -m -f '{{.Version}}' "$bump")
# `go list -m -versions` through the proxy; the next version after ours.
new_version=$(cd "$tmp/p2" && gocmd GOMODCACHE="$tmp/gomodcache-get" GOPROXY="$proxy" \
	go list -m -versions -f '{{range .Versions}}{{.}} {{end}}' "$bump" |
	tr ' ' '\n' | awk -v cur="$old_version" 'found && NF { print; exit } $0 == cur { found = 1 }')
[[ -n $new_version ]] || die "no version of $bump after $old_version"
(
	cd "$tmp/p2"
	# GOSUMDB=off: the new version is not in go.sum and sum.golang.org may be
	# unreachable; this is a benchmark input, not something to trust.
	gocmd GOMODCACHE="$tmp/gomodcache-get" GOPROXY="$proxy" GOSUMDB=off GOFLAGS=-modcacherw \
		go get "$bump@$new_version" >&2
	gocmd GOMODCACHE="$tmp/gomodcache-get" GOPROXY="$proxy" GOSUMDB=off GOFLAGS=-modcacherw \
		go mod tidy >&2
)
rm_tree "$tmp/gomodcache-get"
note "$bump $old_version -> $new_version"
pack "$tmp/p2" "oci:$tmp/layout:v2" "$tmp/pack2.json"
pack2_secs=$PACK_SECS pack2_kib=$PACK_KIB pack2_go_kib=$GO_RSS_KIB
modules2=$(json_get "$tmp/pack2.json" 'd["modules"]')

log "push bundle 2 to the registry that holds bundle 1"
"$ocigo" --json --store "$tmp/store-pack" push "oci:$tmp/layout:v2" "$registry/bench/realworld:v2" >"$tmp/push2.json"
push2_bytes=$(json_get "$tmp/push2.json" 'd["copy"]["bytes_sent"]')
push2_blobs=$(json_get "$tmp/push2.json" 'd["copy"]["blobs_sent"]')
push2_blobs_total=$(json_get "$tmp/push2.json" 'd["copy"]["blobs"]')

log "tarball of bundle 2's GOMODCACHE"
"$ocigo" --quiet --store "$tmp/store-ref2" pull "$registry/bench/realworld:v2" --gomodcache "$tmp/ref2" >&2
tar -czf "$tmp/modcache-v2.tgz" -C "$tmp/ref2" .
tar2_bytes=$(stat -c %s "$tmp/modcache-v2.tgz")
rm_tree "$tmp/store-ref2" "$tmp/ref2"

log "incremental pull of bundle 2 over bundle 1 (store and GOMODCACHE hold bundle 1)"
"$ocigo" --json --store "$tmp/store-ref" pull "$registry/bench/realworld:v2" --gomodcache "$tmp/ref1" >"$tmp/pull2.json"
pull2_bytes=$(json_get "$tmp/pull2.json" 'd["bytes_fetched"]')
pull2_installed=$(json_get "$tmp/pull2.json" 'd["installed"]')

# ---------------------------------------------------------------- (d)
log "(d) what signature verification adds to a pull"
COSIGN_PASSWORD='' "$ocigo" key generate --allow-empty-password --output-prefix "$tmp/benchkey" >/dev/null
COSIGN_PASSWORD='' "$ocigo" --quiet --store "$tmp/store-pack" sign --key "$tmp/benchkey.key" \
	"$registry/bench/realworld:v1" >/dev/null
declare -A vreq vsecs
for mode in plain verified; do
	vsecs[$mode]=""
	for ((r = 1; r <= reps; r++)); do
		fresh
		verify_args=()
		[[ $mode == verified ]] && verify_args=(--verify-key "$tmp/benchkey.pub")
		before=$(count_registry_requests "$tmp/registry")
		MEASURE_STDOUT=/dev/null measure "$ocigo" --quiet --store "$tmp/run/store" \
			pull "${verify_args[@]}" "$registry/bench/realworld:v1" --gomodcache "$tmp/run/gomodcache"
		vreq[$mode]=$(($(count_registry_requests "$tmp/registry") - before))
		vsecs[$mode]+="$MEASURE_SECS "
		if ((r == 1)); then
			# Method and path of each request, digests kept: compared below.
			tail -n "${vreq[$mode]}" "$tmp/registry/registry.log" |
				grep -oE '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/[^ ]*' | tr -d '"' | sort >"$tmp/requests-$mode.txt"
		fi
	done
	note "$mode pull: ${vreq[$mode]} registry requests, ${vsecs[$mode]}s"
done
fresh
extra_requests=$((vreq[verified] - vreq[plain]))
# Requests the verified pull made that the plain one did not.
comm -13 "$tmp/requests-plain.txt" "$tmp/requests-verified.txt" >"$tmp/verify-requests.txt" || true

# ---------------------------------------------------------------- table
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
declare -A med
for m in "${methods[@]}"; do
	# shellcheck disable=SC2086 # a space-separated list of numbers
	med[$m]=$(median ${secs[$m]})
done
{
	echo "# ocigo module benchmark: testdata/realworld"
	echo
	echo "- closure: $modules module versions ($zips with zips); bundle $(human_bytes "$bundle1_bytes") (unique blobs)"
	echo "- GOMODCACHE once installed: $ref1_counts; \`tar -czf\` of it: $(human_bytes "$tar1_bytes")"
	echo "- $(go version | cut -d' ' -f3-), ocigo $("$ocigo" --version | cut -d' ' -f2) (${OCIGO_BUILD_PROFILE:-release}), $(nproc) cores, $(date -u +%Y-%m-%d)"
	echo "- all local: registry on loopback, warm page cache; median of $reps runs;"
	echo "  load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo
	echo "## (a) Install the closure into an empty GOMODCACHE"
	echo
	echo "| Method | Median | Runs (s) | Time vs ocigo pull (registry) | Peak RSS | Result |"
	echo "|---|---:|---|---:|---:|---|"
	for m in "${methods[@]}"; do
		echo "| ${desc[$m]} | ${med[$m]} s | ${secs[$m]% } | $(ratio "${med[$m]}" "${med[reg]}")x | $(mib "${kib[$m]}") | ${result_counts[$m]} |"
	done
	echo
	echo "The ratio is the method's median time over ocigo pull's (below 1: faster than ocigo)."
	echo "ocigo pull runs with a fresh, empty content store each time, so it fetches,"
	echo "digest-checks every blob (no fsync), then checks every zip (h1, zip rules)"
	echo "and .mod against the bundle before installing. tar checks nothing; go mod"
	echo "download checks hashes against go.sum."
	echo
	echo "## (b) Ship an update: $bump $old_version -> $new_version"
	echo
	echo "| What crosses the gap | Bytes | vs ocigo push |"
	echo "|---|---:|---:|"
	echo "| \`ocigo push\` of bundle 2 to a registry holding bundle 1 ($push2_blobs of $push2_blobs_total blobs) | $(human_bytes "$push2_bytes") ($push2_bytes B) | 1x |"
	echo "| whole \`tar -czf\` of bundle 2's GOMODCACHE | $(human_bytes "$tar2_bytes") | $(ratio "$tar2_bytes" "$push2_bytes")x |"
	echo "| \`ocigo push\` of bundle 1 to an empty registry (first copy) | $(human_bytes "$push1_bytes") | $(ratio "$push1_bytes" "$push2_bytes")x |"
	echo
	echo "Bundle 2 has $modules2 module versions. \`ocigo pull\` of bundle 2 over bundle 1"
	echo "(same store and GOMODCACHE) fetched $(human_bytes "$pull2_bytes") and installed $pull2_installed module versions."
	echo
	echo "## (c) Peak memory (max RSS)"
	echo
	echo "| Command | Peak RSS | Wall time |"
	echo "|---|---:|---:|"
	echo "| ocigo pack, bundle 1: the ocigo process | $(mib "$pack1_kib") | ${pack1_secs} s |"
	echo "| ... the largest go command it ran | $(mib "$pack1_go_kib") | |"
	echo "| ocigo pack, bundle 2 (store holds bundle 1): the ocigo process | $(mib "$pack2_kib") | ${pack2_secs} s |"
	echo "| ... the largest go command it ran | $(mib "$pack2_go_kib") | |"
	echo "| ocigo pull from a local registry (max of $reps) | $(mib "${kib[reg]}") | ${med[reg]} s |"
	echo "| ocigo pull from an oci: layout (max of $reps) | $(mib "${kib[layout]}") | ${med[layout]} s |"
	echo
	echo "Pull: GNU time (\`%M\`). Pack: the ocigo process's own VmHWM, sampled every"
	echo "5 ms, and each go command's GNU time peak (through OCIGO_GO); pack times"
	echo "include resolving through the module proxy over the network."
	echo
	echo "## (d) What signature verification adds to a pull"
	echo
	echo "| Pull of bundle 1 (fresh store and GOMODCACHE) | Registry requests | Median |"
	echo "|---|---:|---:|"
	# shellcheck disable=SC2086 # a space-separated list of numbers
	echo "| \`ocigo pull\` | ${vreq[plain]} | $(median ${vsecs[plain]}) s |"
	# shellcheck disable=SC2086 # a space-separated list of numbers
	echo "| \`ocigo pull --verify-key\` | ${vreq[verified]} | $(median ${vsecs[verified]}) s |"
	echo
	echo "Verification added $extra_requests requests (expected: resolve the \`.sig\` tag, fetch"
	echo "its manifest, fetch the payload blob; nothing else). The added requests:"
	echo
	sed 's/^/    /' "$tmp/verify-requests.txt"
} >"$tmp/bench.md"
mkdir -p "$(dirname "$out_md")"
cp "$tmp/bench.md" "$out_md"
cat "$tmp/bench.md"
log "written to $out_md; bench took $(secs_since "$started") s"
