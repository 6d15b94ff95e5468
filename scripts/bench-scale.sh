#!/usr/bin/env bash
# Organisation-scale benchmark: for each size (default 2,000 and 20,000
# module versions), generate the closure (tests/common/closure.rs: a third
# of the versions with packages, BENCH_SCALE_FILES files per zip, the rest
# graph-only, paths with three versions, upper-case paths, /vN suffixes,
# pseudo-versions; cached under target/), then in one run: pack it (and the
# go commands' share), push it to an empty local registry, pull it into an
# empty GOMODCACHE, build offline, and pack + push a one-module upgrade,
# addition and removal, with wall time and peak RSS of each step and the
# bytes each update added to the registry. Prints Markdown (also written to
# target/bench-scale.md). Release build of the test harness.
#
#   scripts/bench-scale.sh                 # 2000 and 20000
#   BENCH_SCALE_SIZES="20000" scripts/bench-scale.sh
#
# Needs docker-registry and the go command (no network: the proxy is a
# file:// tree the harness writes).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_test_deps

sizes=${BENCH_SCALE_SIZES:-2000 20000}
files=${BENCH_SCALE_FILES:-12}
out_md=$OCIGO_ROOT/target/bench-scale.md
cd "$OCIGO_ROOT"
{
	echo "## Organisation scale ($(date -u +%Y-%m-%d), $(nproc) cores, $(go version | cut -d' ' -f3))"
	echo
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
} >"$out_md"
for n in $sizes; do
	log "closure of $n module versions"
	{
		echo "### $n module versions ($((n / 3)) with packages, $files files a zip)"
		echo
	} >>"$out_md"
	OCIGO_SCALE_VERSIONS=$n OCIGO_SCALE_PACKAGES=$((n / 3)) OCIGO_SCALE_FILES=$files \
		OCIGO_SCALE_MEASURE=1 OCIGO_SCALE_MEASURE_CUTS=1 \
		cargo test "${CARGO_LOCK_FLAGS[@]}" --release --test scale -- --nocapture --test-threads 1 \
		organisation_scale 2>&1 | tee "$OCIGO_ROOT/target/bench-scale-$n.log" |
		grep -E '^\||^[0-9]+ module versions' >>"$out_md" || die "the scale run of $n failed: see target/bench-scale-$n.log"
	echo >>"$out_md"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out_md"
cat "$out_md"
