#!/usr/bin/env bash
# Benchmark ocigo's toolchain artifacts in one run and print a Markdown
# report (also written to target/bench-toolchain.md):
#
#  (a) stored bytes for two platforms of one release (linux/amd64 +
#      linux/arm64 of $BENCH_NEW, through the module proxy) against one;
#  (b) stored bytes a patch release adds next to its predecessor
#      ($BENCH_PREV then $BENCH_NEW, linux/amd64, one layout) against the
#      release alone: as full layers, and with `--delta-from` the
#      predecessor (bin/ and pkg/tool/ as deltas);
#  (c) `ocigo pull --goroot` (fresh store, from an oci: layout) against
#      `tar -xzf` of the official archive for the same platform: the host's
#      /usr/local/go is an unpacked official archive, tarred back up with
#      its go/ prefix as released (median of BENCH_REPS runs, interleaved);
#  (c') `ocigo pull --goroot` of $BENCH_NEW's delta form and of its full
#      form against `tar -xzf` of the same tree (the full form's GOROOT
#      tarred up with a go/ prefix);
#  (d) peak memory (max RSS) of pack and pull, deltas included.
#
# Needs the Go module proxy (GOPROXY, default proxy.golang.org) and the
# checksum database it serves, GNU time. Builds ocigo in release mode.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps
ensure_gnu_time

reps=${BENCH_REPS:-3}
new=${BENCH_NEW:-go1.27.4}
prev=${BENCH_PREV:-go1.27.3}
out_md=$OCIGO_ROOT/target/bench-toolchain.md
init_tmp ocigo-bench-toolchain
tmp=$OCIGO_TMP
ocigo=$(build_ocigo)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
host_version=$(head -n 1 /usr/local/go/VERSION)

# Sum of the sizes of the distinct layers of the given tags of a layout.
layer_bytes() {
	python3 - "$@" <<'EOF'
import json, sys
from pathlib import Path
layout, tags = Path(sys.argv[1]), sys.argv[2:]
blob = lambda d: json.loads((layout / "blobs/sha256" / d.split(":")[1]).read_text())
refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in json.loads((layout / "index.json").read_text())["manifests"]}
layers = {}
for spec in tags:
    tag, _, platform = spec.partition("@")
    top = blob(refs[tag]["digest"])
    for e in top.get("manifests", []):
        # Toolchains only: the index also holds the checksum database's
        # records (an entry without a platform).
        if "platform" not in e:
            continue
        p = e["platform"]
        if platform and f'{p.get("os")}/{p.get("architecture")}' != platform:
            continue
        for l in blob(e["digest"])["layers"]:
            layers[l["digest"]] = l["size"]
print(sum(layers.values()), len(layers))
EOF
}

run_ocigo() { "$ocigo" --quiet --store "$tmp/store" "$@" >&2; }

log "(a) $new for linux/amd64 and linux/arm64 through the module proxy"
measure "$ocigo" --quiet --store "$tmp/store" pack toolchain "$new" --platform linux/amd64 --platform linux/arm64 -o "oci:$tmp/two:$new"
pack_two_secs=$MEASURE_SECS pack_two_kib=$MEASURE_KIB
read -r one_bytes one_layers < <(layer_bytes "$tmp/two" "$new@linux/amd64")
read -r two_bytes two_layers < <(layer_bytes "$tmp/two" "$new")

log "(b) $prev next to $new (linux/amd64)"
run_ocigo pack toolchain "$prev" -o "oci:$tmp/patch:$prev"
run_ocigo pack toolchain "$new" -o "oci:$tmp/patch:$new"
read -r prev_bytes _ < <(layer_bytes "$tmp/patch" "$prev")
read -r both_bytes _ < <(layer_bytes "$tmp/patch" "$prev" "$new")
read -r new_alone _ < <(layer_bytes "$tmp/patch" "$new")
added=$((both_bytes - prev_bytes))
changed_layers=$(python3 - "$tmp/patch" "$prev" "$new" <<'EOF'
import json, sys
from pathlib import Path
layout = Path(sys.argv[1])
blob = lambda d: json.loads((layout / "blobs/sha256" / d.split(":")[1]).read_text())
refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in json.loads((layout / "index.json").read_text())["manifests"]}
def layers(tag):
    e = next(m for m in blob(refs[tag]["digest"])["manifests"] if "platform" in m)
    return {l["digest"]: l for l in blob(blob(e["digest"])["config"]["digest"])["layers"]}
a, b = layers(sys.argv[2]), layers(sys.argv[3])
new = [l for d, l in b.items() if d not in a]
print(f"{len(new)} of {len(b)} layers new: " + ", ".join(sorted(l["name"] for l in new)))
EOF
)

log "(b) $new --delta-from $prev (linux/amd64)"
run_ocigo pack toolchain "$prev" -o "oci:$tmp/dpatch:$prev"
measure "$ocigo" --quiet --store "$tmp/store" pack toolchain "$new" --delta-from "oci:$tmp/dpatch:$prev" -o "oci:$tmp/dpatch:$new"
pack_delta_secs=$MEASURE_SECS pack_delta_kib=$MEASURE_KIB
read -r dprev_bytes _ < <(layer_bytes "$tmp/dpatch" "$prev")
read -r dboth_bytes _ < <(layer_bytes "$tmp/dpatch" "$prev" "$new")
# What a fresh pull of the delta form fetches: its own layers and the bases.
read -r delta_fresh _ < <(layer_bytes "$tmp/dpatch" "$new")
delta_added=$((dboth_bytes - dprev_bytes))

log "(c') pull --goroot of $new: delta form, full form, tar -xzf of the same tree"
delta_times=() full_times=() newtar_times=() delta_pull_kib=0 full_pull_kib=0
for _ in $(seq "$reps"); do
	rm_tree "$tmp/dpull" "$tmp/dpullstore" "$tmp/fpull" "$tmp/fpullstore" "$tmp/newtar"
	sync
	measure "$ocigo" --quiet --store "$tmp/dpullstore" pull "oci:$tmp/dpatch:$new" --goroot "$tmp/dpull/go"
	delta_times+=("$MEASURE_SECS")
	((MEASURE_KIB > delta_pull_kib)) && delta_pull_kib=$MEASURE_KIB
	sync
	measure "$ocigo" --quiet --store "$tmp/fpullstore" pull "oci:$tmp/patch:$new" --goroot "$tmp/fpull/go"
	full_times+=("$MEASURE_SECS")
	((MEASURE_KIB > full_pull_kib)) && full_pull_kib=$MEASURE_KIB
	if [[ ! -f $tmp/new.tar.gz ]]; then
		tar -czf "$tmp/new.tar.gz" -C "$tmp/fpull" go
	fi
	mkdir -p "$tmp/newtar"
	sync
	measure tar -xzf "$tmp/new.tar.gz" -C "$tmp/newtar"
	newtar_times+=("$MEASURE_SECS")
done
diff -r "$tmp/dpull/go" "$tmp/fpull/go" >&2 || die "the delta form's GOROOT differs from the full form's"
"$tmp/dpull/go/bin/go" version >&2
delta_med=$(median "${delta_times[@]}")
full_med=$(median "${full_times[@]}")
newtar_med=$(median "${newtar_times[@]}")

log "(c) ocigo pull --goroot against tar -xzf of the official archive ($host_version linux/amd64)"
archive=$tmp/$host_version.linux-amd64.tar.gz
tar -czf "$archive" -C /usr/local go
sha=$(sha256sum "$archive" | cut -d' ' -f1)
measure "$ocigo" --quiet --store "$tmp/store" pack toolchain --from-archive "$archive" --sha256 "$sha" -o "oci:$tmp/archive:host"
pack_archive_secs=$MEASURE_SECS pack_archive_kib=$MEASURE_KIB
read -r archive_layer_bytes archive_layers < <(layer_bytes "$tmp/archive" host)
archive_bytes=$(stat -c %s "$archive")
ocigo_times=() tar_times=() pull_kib=0 tar_kib=0
for _ in $(seq "$reps"); do
	rm_tree "$tmp/pull" "$tmp/pullstore" "$tmp/tar"
	sync
	measure "$ocigo" --quiet --store "$tmp/pullstore" pull "oci:$tmp/archive:host" --goroot "$tmp/pull/go"
	ocigo_times+=("$MEASURE_SECS")
	((MEASURE_KIB > pull_kib)) && pull_kib=$MEASURE_KIB
	mkdir -p "$tmp/tar"
	sync
	measure tar -xzf "$archive" -C "$tmp/tar"
	tar_times+=("$MEASURE_SECS")
	((MEASURE_KIB > tar_kib)) && tar_kib=$MEASURE_KIB
done
"$tmp/pull/go/bin/go" version >&2
diff -r "$tmp/pull/go" "$tmp/tar/go" >&2 || die "ocigo's GOROOT differs from the archive's"
ocigo_med=$(median "${ocigo_times[@]}")
tar_med=$(median "${tar_times[@]}")
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "- go $host_version on the host; ocigo $("$ocigo" --version | cut -d' ' -f2) (${OCIGO_BIN:+binary $OCIGO_BIN, }${OCIGO_BIN:-release}); $(nproc) cores; $(date -u +%F)"
	echo "- load average $load_start at the start, $load_end at the end; median of $reps runs"
	echo
	echo "### (a) Two platforms of $new against one"
	echo
	echo "| Stored | Bytes | Layers | vs one platform |"
	echo "|---|---:|---:|---:|"
	echo "| linux/amd64 | $(human_bytes "$one_bytes") | $one_layers | 1.00x |"
	echo "| linux/amd64 + linux/arm64 | $(human_bytes "$two_bytes") | $two_layers | $(ratio "$two_bytes" "$one_bytes")x |"
	echo
	echo "### (b) A patch release next to its predecessor (linux/amd64)"
	echo
	echo "| Stored | Bytes | vs $new alone |"
	echo "|---|---:|---:|"
	echo "| $new alone | $(human_bytes "$new_alone") | 1.00x |"
	echo "| added by $new to a store holding $prev | $(human_bytes "$added") | $(ratio "$added" "$new_alone")x |"
	echo "| added by $new --delta-from $prev | $(human_bytes "$delta_added") | $(ratio "$delta_added" "$new_alone")x |"
	echo
	echo "$changed_layers"
	echo
	echo "A fresh pull of the delta form fetches its own layers and the bases: $(human_bytes "$delta_fresh") ($(ratio "$delta_fresh" "$new_alone")x of the full form)."
	echo
	echo "### (c) Installing a GOROOT ($host_version linux/amd64)"
	echo
	echo "| Method | Median | Runs (s) | vs tar | Peak RSS |"
	echo "|---|---:|---|---:|---:|"
	echo "| ocigo pull --goroot (fresh store, oci: layout) | $ocigo_med s | ${ocigo_times[*]} | $(ratio "$ocigo_med" "$tar_med")x | $(human_bytes $((pull_kib * 1024))) |"
	echo "| tar -xzf of the official archive | $tar_med s | ${tar_times[*]} | 1.00x | $(human_bytes $((tar_kib * 1024))) |"
	echo
	echo "Archive $(human_bytes "$archive_bytes") (gzip); the same tree as ocigo layers: $(human_bytes "$archive_layer_bytes") in $archive_layers layers."
	echo
	echo "### (c') Installing $new linux/amd64: delta form, full form, tar"
	echo
	echo "| Method | Median | Runs (s) | vs tar | Peak RSS |"
	echo "|---|---:|---|---:|---:|"
	echo "| ocigo pull --goroot, delta form (fresh store) | $delta_med s | ${delta_times[*]} | $(ratio "$delta_med" "$newtar_med")x | $(human_bytes $((delta_pull_kib * 1024))) |"
	echo "| ocigo pull --goroot, full form (fresh store) | $full_med s | ${full_times[*]} | $(ratio "$full_med" "$newtar_med")x | $(human_bytes $((full_pull_kib * 1024))) |"
	echo "| tar -xzf of the same tree | $newtar_med s | ${newtar_times[*]} | 1.00x | |"
	echo
	echo "### (d) Peak memory"
	echo
	echo "| Command | Peak RSS | Wall time |"
	echo "|---|---:|---:|"
	echo "| ocigo pack toolchain $new, two platforms, from the proxy | $(human_bytes $((pack_two_kib * 1024))) | $pack_two_secs s |"
	echo "| ocigo pack toolchain --from-archive | $(human_bytes $((pack_archive_kib * 1024))) | $pack_archive_secs s |"
	echo "| ocigo pack toolchain $new --delta-from $prev | $(human_bytes $((pack_delta_kib * 1024))) | $pack_delta_secs s |"
	echo "| ocigo pull --goroot, delta form (max of $reps) | $(human_bytes $((delta_pull_kib * 1024))) | $delta_med s |"
	echo "| ocigo pull --goroot (max of $reps) | $(human_bytes $((pull_kib * 1024))) | $ocigo_med s |"
} | tee "$out_md"
