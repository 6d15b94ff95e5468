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
#  (c) peak memory (max RSS) of pack and pull;
#  (d) what signature verification adds to a pull: registry requests and
#      time, legacy (.sig tag) and bundle (cosign v3, a referrer) formats,
#      on distribution 2.8 (no referrers API: fallback tag) and on
#      tests/refregistry (with the API).
#
# BENCH_ONLY=verify runs only what (d) needs (pack and push bundle 1) and
# prints only (d).
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

only=${BENCH_ONLY:-}
[[ -z $only || $only == verify ]] || die "BENCH_ONLY must be verify or unset, not $only"
if [[ -z $only ]]; then
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

fi

# ---------------------------------------------------------------- (d)
log "(d) what signature verification adds to a pull"
COSIGN_PASSWORD='' "$ocigo" key generate --allow-empty-password --output-prefix "$tmp/legacykey" >/dev/null
COSIGN_PASSWORD='' "$ocigo" key generate --allow-empty-password --output-prefix "$tmp/bundlekey" >/dev/null
start_refregistry "$tmp/refregistry" >/dev/null
refregistry=$REGISTRY_ADDR
# The same bundle under two repositories of each registry: one signed in
# the legacy format only, one in the bundle format only, so each pull
# pays for one format (a pull always looks for both).
for reg in "$registry" "$refregistry"; do
	for fmt in legacy bundle; do
		"$ocigo" --quiet --store "$tmp/store-pack" push "oci:$tmp/layout:v1" "$reg/bench/$fmt:v1" >&2
		COSIGN_PASSWORD='' "$ocigo" --quiet --store "$tmp/store-pack" sign --format "$fmt" \
			--key "$tmp/${fmt}key.key" "$reg/bench/$fmt:v1" >/dev/null
	done
done
declare -A vreq vsecs vdir vref vkey vdesc
vmodes=(plain legacy bundle refplain reflegacy refbundle)
vdesc[plain]="\`ocigo pull\`"
vdesc[legacy]="\`ocigo pull --verify-key\`, legacy signature"
vdesc[bundle]="\`ocigo pull --verify-key\`, bundle signature"
vdesc[refplain]="\`ocigo pull\`"
vdesc[reflegacy]="\`ocigo pull --verify-key\`, legacy signature"
vdesc[refbundle]="\`ocigo pull --verify-key\`, bundle signature"
for m in plain legacy bundle; do vdir[$m]=$tmp/registry vdir[ref$m]=$tmp/refregistry; done
vref[plain]=$registry/bench/legacy:v1 vref[legacy]=$registry/bench/legacy:v1 vref[bundle]=$registry/bench/bundle:v1
vref[refplain]=$refregistry/bench/legacy:v1 vref[reflegacy]=$refregistry/bench/legacy:v1
vref[refbundle]=$refregistry/bench/bundle:v1
vkey[legacy]=$tmp/legacykey.pub vkey[reflegacy]=$tmp/legacykey.pub
vkey[bundle]=$tmp/bundlekey.pub vkey[refbundle]=$tmp/bundlekey.pub
for ((r = 1; r <= reps; r++)); do
	for mode in "${vmodes[@]}"; do
		fresh
		verify_args=()
		[[ -n ${vkey[$mode]:-} ]] && verify_args=(--verify-key "${vkey[$mode]}")
		before=$(count_registry_requests "${vdir[$mode]}")
		MEASURE_STDOUT=/dev/null measure "$ocigo" --quiet --store "$tmp/run/store" \
			pull "${verify_args[@]}" "${vref[$mode]}" --gomodcache "$tmp/run/gomodcache"
		vreq[$mode]=$(($(count_registry_requests "${vdir[$mode]}") - before))
		vsecs[$mode]+="$MEASURE_SECS "
		if ((r == 1)); then
			# Method and path of each request, digests kept: compared below.
			tail -n "${vreq[$mode]}" "${vdir[$mode]}/registry.log" |
				grep -oE '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/[^ ]*' | tr -d '"' |
				sed 's#/v2/bench/\(legacy\|bundle\)/#/v2/bench/REPO/#' | sort >"$tmp/requests-$mode.txt"
		fi
		note "$(printf '%-10s %3s requests %8s s' "$mode" "${vreq[$mode]}" "$MEASURE_SECS")"
	done
done
fresh
# Requests each verified pull made that the plain one (same registry) did not.
for mode in legacy bundle; do
	comm -13 "$tmp/requests-plain.txt" "$tmp/requests-$mode.txt" >"$tmp/verify-$mode.txt" || true
	comm -13 "$tmp/requests-refplain.txt" "$tmp/requests-ref$mode.txt" >"$tmp/verify-ref$mode.txt" || true
done

# ---------------------------------------------------------------- table
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
declare -A med
if [[ -z $only ]]; then
	for m in "${methods[@]}"; do
		# shellcheck disable=SC2086 # a space-separated list of numbers
		med[$m]=$(median ${secs[$m]})
	done
fi
{
	echo "# ocigo module benchmark: testdata/realworld"
	echo
	echo "- closure: $modules module versions ($zips with zips); bundle $(human_bytes "$bundle1_bytes") (unique blobs)"
	if [[ -z $only ]]; then
		echo "- GOMODCACHE once installed: $ref1_counts; \`tar -czf\` of it: $(human_bytes "$tar1_bytes")"
	fi
	echo "- $(go version | cut -d' ' -f3-), ocigo $("$ocigo" --version | cut -d' ' -f2) (${OCIGO_BUILD_PROFILE:-release}), $(nproc) cores, $(date -u +%Y-%m-%d)"
	echo "- all local: registry on loopback, warm page cache; median of $reps runs;"
	echo "  load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo
	if [[ -z $only ]]; then
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
	fi
	echo "## (d) What signature verification adds to a pull"
	echo
	echo "| Pull of bundle 1 (fresh store and GOMODCACHE) | Registry | Requests | Median |"
	echo "|---|---|---:|---:|"
	for mode in "${vmodes[@]}"; do
		where="distribution 2.8 (no referrers API)"
		[[ $mode == ref* ]] && where="refregistry (referrers API)"
		# shellcheck disable=SC2086 # a space-separated list of numbers
		echo "| ${vdesc[$mode]} | $where | ${vreq[$mode]} | $(median ${vsecs[$mode]}) s |"
	done
	echo
	echo "A verified pull looks for both formats: the \`.sig\` tag and the bundle"
	echo "referrers (the referrers API, or on a registry without it the fallback tag)."
	for mode in legacy bundle reflegacy refbundle; do
		base=plain
		[[ $mode == ref* ]] && base=refplain
		echo
		echo "${vdesc[$mode]} on ${mode/#ref/the referrers-API registry, }: $((vreq[$mode] - vreq[$base])) more requests than \`ocigo pull\`:"
		echo
		sed 's/^/    /' "$tmp/verify-$mode.txt"
	done
} >"$tmp/bench.md"
mkdir -p "$(dirname "$out_md")"
cp "$tmp/bench.md" "$out_md"
cat "$tmp/bench.md"
log "written to $out_md; bench took $(secs_since "$started") s"
