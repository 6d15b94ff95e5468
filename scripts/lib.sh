# shellcheck shell=bash
# Shared shell functions for ocigo's scripts and CI. Source it:
#
#   source "$(dirname "$0")/lib.sh"
#
# Sourcing installs an EXIT trap that runs what `add_cleanup` registered
# (in reverse order), and turns INT/TERM into a normal exit so the trap
# runs. Scripts should not set their own EXIT trap; use add_cleanup.
#
# Functions that "print" something print it on stdout and nothing else;
# progress and the output of the commands they run go to stderr.

OCIGO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OCIGO_ROOT

# ------------------------------------------------------------ messages

log() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Run a command as root (directly when we are root, else through sudo).
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# ------------------------------------------------------------ cleanup

_OCIGO_CLEANUPS=()

# add_cleanup CMD...: run CMD (one string, eval'd) when the script exits.
add_cleanup() { _OCIGO_CLEANUPS+=("$*"); }

_ocigo_on_exit() {
	local rc=$? i
	set +e
	for ((i = ${#_OCIGO_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${_OCIGO_CLEANUPS[i]}" || true
	done
	_OCIGO_CLEANUPS=()
	exit "$rc"
}
trap _ocigo_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# rm_tree DIR...: remove trees, including read-only module caches (0444/0555).
rm_tree() {
	local d
	for d in "$@"; do
		[[ -e $d ]] || continue
		chmod -R u+w -- "$d" 2>/dev/null || true
		rm -rf -- "$d"
	done
}

# init_tmp [NAME]: create a scratch directory, set OCIGO_TMP to it, and
# remove it on exit (unless KEEP_TMP=1). Call it directly, not in $(...).
init_tmp() {
	OCIGO_TMP=$(mktemp -d "${TMPDIR:-/tmp}/${1:-ocigo}.XXXXXX")
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		add_cleanup "note 'kept scratch directory $OCIGO_TMP'"
	else
		add_cleanup "rm_tree '$OCIGO_TMP'"
	fi
}

# ------------------------------------------------------------ building

# Extra cargo flags: in CI (CI=true) the committed Cargo.lock must be
# complete (--locked); on a developer's machine cargo may update it.
CARGO_LOCK_FLAGS=()
if [[ ${CI:-} == true ]]; then
	CARGO_LOCK_FLAGS=(--locked)
fi

# build_ocigo: build the ocigo binary and print its path. Profile from
# OCIGO_BUILD_PROFILE (release, the default, or debug). OCIGO_BIN, when
# set, is used as is (no build).
build_ocigo() {
	if [[ -n ${OCIGO_BIN:-} ]]; then
		[[ -x $OCIGO_BIN ]] || die "OCIGO_BIN=$OCIGO_BIN is not an executable"
		printf '%s\n' "$OCIGO_BIN"
		return
	fi
	local profile=${OCIGO_BUILD_PROFILE:-release} flag=() dir
	case $profile in
	release) flag=(--release) dir=release ;;
	debug | dev) dir=debug ;;
	*) die "OCIGO_BUILD_PROFILE must be release or debug, not $profile" ;;
	esac
	log "building ocigo ($profile)"
	(cd "$OCIGO_ROOT" && cargo build "${CARGO_LOCK_FLAGS[@]}" "${flag[@]}" --bin ocigo >&2) ||
		die "cargo build failed"
	local target=${CARGO_TARGET_DIR:-$OCIGO_ROOT/target}
	[[ $target == /* ]] || target=$OCIGO_ROOT/$target
	printf '%s\n' "$target/$dir/ocigo"
}

# ------------------------------------------------------------ registry

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
_OCIGO_REGISTRY_DIRS=()

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_registry DIR: start CNCF distribution (`docker-registry`) on a free
# port of 127.0.0.1 with a config of its own (DIR/config.yml) and storage
# in DIR/storage; wait until GET /v2/ answers; print HOST:PORT. Also sets
# REGISTRY_ADDR and REGISTRY_PID, writes DIR/registry.pid and registers
# the registry for `stop_registry` with no argument and for the exit trap.
# Called in $(...) only the pid file survives: stop it with
# `stop_registry DIR` (add_cleanup "stop_registry DIR").
# With REGISTRY_NO_ACCESSLOG=false, every request is logged to
# DIR/registry.log (count them with count_registry_requests DIR).
start_registry() {
	local dir=${1:?start_registry DIR}
	[[ -x $REGISTRY_BIN ]] ||
		die "$REGISTRY_BIN is missing: apt-get install -y docker-registry"
	mkdir -p "$dir/storage"
	dir=$(cd "$dir" && pwd)
	local try port addr pid
	for try in 1 2 3 4 5; do
		port=$(free_port)
		addr=127.0.0.1:$port
		cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: ${REGISTRY_NO_ACCESSLOG:-true}
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: $addr
EOF
		"$REGISTRY_BIN" serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/registry.pid"
		_OCIGO_REGISTRY_DIRS+=("$dir")
		add_cleanup "stop_registry '$dir'"
		if _wait_registry "$addr" "$pid"; then
			# shellcheck disable=SC2034 # for the caller
			REGISTRY_ADDR=$addr
			# shellcheck disable=SC2034 # for the caller
			REGISTRY_PID=$pid
			printf '%s\n' "$addr"
			return 0
		fi
		stop_registry "$dir"
		warn "registry on $addr did not start (try $try): $(tail -n 3 "$dir/registry.log")"
	done
	die "could not start $REGISTRY_BIN; its log: $(cat "$dir/registry.log")"
}

# start_refregistry DIR: like start_registry, but tests/refregistry (the
# registry with the OCI 1.1 referrers API; ensure_refregistry builds it),
# blobs in DIR/storage, every request logged to DIR/registry.log (count
# them with count_registry_requests DIR). Stop it with stop_registry.
start_refregistry() {
	local dir=${1:?start_refregistry DIR}
	ensure_refregistry
	mkdir -p "$dir/storage"
	dir=$(cd "$dir" && pwd)
	local try port addr pid
	for try in 1 2 3 4 5; do
		port=$(free_port)
		addr=127.0.0.1:$port
		"$OCIGO_REFREGISTRY" -addr "$addr" -blobs "$dir/storage" -accesslog "$dir/registry.log" \
			</dev/null >"$dir/refregistry.out" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/registry.pid"
		_OCIGO_REGISTRY_DIRS+=("$dir")
		add_cleanup "stop_registry '$dir'"
		if _wait_registry "$addr" "$pid"; then
			# shellcheck disable=SC2034 # for the caller
			REGISTRY_ADDR=$addr
			# shellcheck disable=SC2034 # for the caller
			REGISTRY_PID=$pid
			printf '%s\n' "$addr"
			return 0
		fi
		stop_registry "$dir"
		warn "refregistry on $addr did not start (try $try): $(tail -n 3 "$dir/refregistry.out")"
	done
	die "could not start $OCIGO_REFREGISTRY; its output: $(cat "$dir/refregistry.out")"
}

_wait_registry() {
	local addr=$1 pid=$2 i code
	for ((i = 0; i < 200; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr/v2/" || true)
		[[ $code == 200 || $code == 401 ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# stop_registry [DIR...]: stop the registries started with start_registry
# (all those started by this shell when no DIR is given). Idempotent;
# never fails.
stop_registry() {
	local dirs=("$@") dir pid i
	((${#dirs[@]})) || dirs=("${_OCIGO_REGISTRY_DIRS[@]}")
	for dir in "${dirs[@]}"; do
		[[ -f $dir/registry.pid ]] || continue
		pid=$(cat "$dir/registry.pid" 2>/dev/null || true)
		rm -f "$dir/registry.pid"
		[[ $pid =~ ^[0-9]+$ ]] || continue
		# Only signal the process if it still is our registry (pids get reused).
		grep -qaE "docker-registry|refregistry" "/proc/$pid/cmdline" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	return 0
}

# ------------------------------------------------------------ go command

# go_env: print NAME=VALUE lines for a go command with a clean, explicit
# environment (like tests/common/go.rs): GOENV=off (ignores `go env -w`),
# GOTOOLCHAIN=local, GOFLAGS empty. Use as: env -i "${GO_BASE_ENV[@]}" ...
go_base_env() {
	GO_BASE_ENV=(
		"PATH=$PATH"
		"HOME=$HOME"
		"TMPDIR=${TMPDIR:-/tmp}"
		"GOCACHE=${GOCACHE:-$(go env GOCACHE)}"
		GOENV=off
		GOTOOLCHAIN=local
		GOFLAGS=
	)
}

# go_offline DIR GOMODCACHE ARGS...: `go ARGS` in DIR inside a network
# namespace with no network at all (`unshare -n`, needs root), with
# GOPROXY=off, the default GOSUMDB, and GOFLAGS empty.
go_offline() {
	local dir=$1 modcache=$2
	shift 2
	go_base_env
	(cd "$dir" && as_root unshare -n -- env -i "${GO_BASE_ENV[@]}" \
		"GOMODCACHE=$modcache" GOPROXY=off go "$@")
}

# ------------------------------------------------------------ measuring

# ensure_gnu_time: make sure /usr/bin/time (GNU time) exists.
ensure_gnu_time() {
	[[ -x /usr/bin/time ]] || ensure_apt_packages time
}

# now_ns: wall clock in nanoseconds.
now_ns() { date +%s%N; }

# secs_since START_NS: seconds elapsed since START_NS, 3 decimals.
secs_since() {
	local end
	end=$(now_ns)
	awk -v a="$1" -v b="$end" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}

# time_cmd CMD...: run CMD (its stdout goes to stderr) and print its wall
# time in seconds. Fails if CMD fails.
time_cmd() {
	local start
	start=$(now_ns)
	"$@" >&2 || return
	secs_since "$start"
}

# measure CMD...: run CMD under GNU time; set MEASURE_SECS (wall seconds,
# 3 decimals) and MEASURE_KIB (peak RSS of the largest process, KiB).
# CMD's stdout goes to $MEASURE_STDOUT if set, else to stderr. Must be
# called directly (not in $(...)) to see the variables. Fails if CMD fails.
measure() {
	ensure_gnu_time
	local f start rc=0
	f=$(mktemp)
	start=$(now_ns)
	if [[ -n ${MEASURE_STDOUT:-} ]]; then
		/usr/bin/time -f %M -o "$f" "$@" >"$MEASURE_STDOUT" || rc=$?
	else
		/usr/bin/time -f %M -o "$f" "$@" >&2 || rc=$?
	fi
	MEASURE_SECS=$(secs_since "$start")
	MEASURE_KIB=$(tail -n 1 "$f")
	rm -f "$f"
	return "$rc"
}

# peak_rss CMD...: run CMD under `/usr/bin/time -f %M` and print its peak
# resident set size in KiB. CMD's stdout goes to $PEAK_RSS_STDOUT if set,
# else to stderr. Fails if CMD fails.
peak_rss() {
	# shellcheck disable=SC2034 # read by measure
	local MEASURE_STDOUT=${PEAK_RSS_STDOUT:-} MEASURE_KIB MEASURE_SECS
	measure "$@" || return
	printf '%s\n' "$MEASURE_KIB"
}

# median N...: print the median of the numbers (mean of the middle two for
# an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) exit 1
		      if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]
		      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: print A/B with 2 decimals ("n/a" when B is 0).
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# human_bytes N: 1536 -> "1.5 KiB".
human_bytes() {
	awk -v n="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1
		while (n >= 1024 && i < 5) { n /= 1024; i++ }
		if (i == 1) printf "%d B\n", n; else printf "%.1f %s\n", n, u[i] }'
}

# json_get FILE EXPR: print a value from a JSON file; EXPR is a Python
# expression over `d` (the parsed document), e.g. 'len(d["modules"])'.
json_get() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

# ------------------------------------------------------------ test deps

# count_registry_requests DIR: requests to /v2/ in the access log so far.
count_registry_requests() {
	grep -cE '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/' "${1:?DIR}/registry.log" || true
}

# ensure_apt_packages PKG...: apt-get install the packages that are not
# installed yet (apt-get update first, only when something is missing).
ensure_apt_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# What the integration tests and scripts run: registry, htpasswd,
# ip/unshare (offline go), strace (the kill-at-every-rename test), GNU
# time, curl, openssl (token service keys). Debian's skopeo is not used: it
# is built with sigstore disabled (tests/containers-policy is used instead).
OCIGO_APT_PACKAGES=(docker-registry apache2-utils iproute2 strace time curl openssl ca-certificates python3-venv)

COSIGN_VERSION=v2.4.1
COSIGN_BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/ocigo-ci/bin

# ensure_go_tool VAR NAME VERSION SOURCE: build a Go program once into
# COSIGN_BIN_DIR/NAME-VERSION and export VAR, its path. A preset VAR is
# kept (it must be an executable). SOURCE is a package path, built with
# `go install SOURCE@VERSION` (the binary is named after its last
# element), or a directory of this checkout, built there with `go build
# -trimpath` (VERSION then names the build, e.g. a hash of its sources,
# so an edit rebuilds it). One builder at a time; the others wait and
# then find the binary. Needs the Go module proxy the first time.
ensure_go_tool() {
	local var=$1 name=$2 version=$3 src=$4
	if [[ -n ${!var:-} ]]; then
		[[ -x ${!var} ]] || die "$var=${!var} is not an executable"
		export "${var?}"
		return
	fi
	local bin=$COSIGN_BIN_DIR/$name-$version
	mkdir -p "$COSIGN_BIN_DIR"
	(
		exec 9>"$COSIGN_BIN_DIR/.lock"
		flock 9
		[[ -x $bin ]] && exit 0
		command -v go >/dev/null || die "the go command is needed to build $name"
		log "building $name $version into $bin (first time only, up to a few minutes)"
		local gobin start ok=true
		gobin=$(mktemp -d "$COSIGN_BIN_DIR/.build.XXXXXX")
		start=$(now_ns)
		if [[ $src == /* ]]; then
			(cd "$src" && GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0 \
				go build -trimpath -o "$gobin/$name" .) >&2 || ok=false
		else
			GOBIN=$gobin GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0 \
				go install "$src@$version" >&2 || ok=false
		fi
		if [[ $ok == true && ! -e $gobin/$name ]]; then
			mv "$gobin/$(basename "$src")" "$gobin/$name" || ok=false
		fi
		if [[ $ok == false ]]; then
			rm -rf "$gobin"
			die "building $name failed (needs the Go module proxy); set $var to a $name $version binary instead"
		fi
		mv "$gobin/$name" "$bin"
		rm -rf "$gobin"
		note "$name built in $(secs_since "$start") s"
	) || exit
	printf -v "$var" '%s' "$bin"
	export "${var?}"
}

# ensure_pip_venv VAR DIR DIST VERSION EXE [EXTRAS]: install DIST==VERSION
# (with [EXTRAS]) from PyPI once into a venv of its own,
# COSIGN_BIN_DIR/../DIR, and export VAR, the venv's bin/EXE. A preset VAR
# is kept. A venv counts as complete once marked (`.complete`) or, for
# one made before the mark, when it holds DIST at VERSION; a failed
# install is removed.
ensure_pip_venv() {
	local var=$1 dir=$2 dist=$3 version=$4 exe=$5 extras=${6:-}
	if [[ -n ${!var:-} ]]; then
		[[ -x ${!var} ]] || die "$var=${!var} is not an executable"
		export "${var?}"
		return
	fi
	local venv
	venv=$(dirname "$COSIGN_BIN_DIR")/$dir
	mkdir -p "$COSIGN_BIN_DIR"
	(
		exec 9>"$COSIGN_BIN_DIR/.lock"
		flock 9
		if [[ -x $venv/bin/$exe ]]; then
			[[ -f $venv/.complete ]] && exit 0
			if [[ $("$venv/bin/python" -c 'import importlib.metadata as m, sys
print(m.version(sys.argv[1]))' "$dist" 2>/dev/null) == "$version" ]]; then
				touch "$venv/.complete"
				exit 0
			fi
		fi
		log "installing $dist $version into $venv (first time only)"
		# Built in place (a venv's scripts name its path).
		rm -rf "$venv"
		if ! python3 -m venv "$venv" >&2 ||
			! "$venv/bin/pip" install --quiet --disable-pip-version-check \
				"$dist${extras:+[$extras]}==$version" >&2; then
			rm -rf "$venv"
			die "installing $dist failed (needs PyPI and python3-venv)"
		fi
		touch "$venv/.complete"
	) || exit
	printf -v "$var" '%s' "$venv/bin/$exe"
	export "${var?}"
}

# ensure_cosign: the cosign CLI (for the interop tests), as OCIGO_COSIGN;
# also linked as COSIGN_BIN_DIR/cosign.
ensure_cosign() {
	local preset=${OCIGO_COSIGN:-}
	ensure_go_tool OCIGO_COSIGN cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign
	[[ -n $preset ]] || ln -sfn "cosign-$COSIGN_VERSION" "$COSIGN_BIN_DIR/cosign"
}

# cosign v3 (the current release line: bundles, OCI 1.1 referrers). The
# newest v3 release the module proxy served when this was pinned
# (`go list -m -versions github.com/sigstore/cosign/v3`). Keep in step with
# COSIGN_V3_VERSION in tests/common/cosign.rs.
COSIGN_V3_VERSION=v3.1.3

# ensure_cosign_v3: the cosign v3 CLI, as OCIGO_COSIGN_V3.
ensure_cosign_v3() {
	ensure_go_tool OCIGO_COSIGN_V3 cosign "$COSIGN_V3_VERSION" github.com/sigstore/cosign/v3/cmd/cosign
}

# The test registry WITH the OCI 1.1 referrers API: tests/refregistry, a
# small Go program around go-containerregistry's pkg/registry (see its
# main.go for what it adds). Built from this checkout; the cached binary is
# named by a hash of its sources, so an edit rebuilds it.
# tests/common/registry.rs computes the same name (keep in step).

# refregistry_hash: the first 16 hex digits of sha256 over main.go, go.mod
# and go.sum (concatenated in that order).
refregistry_hash() {
	local d=$OCIGO_ROOT/tests/refregistry
	cat "$d/main.go" "$d/go.mod" "$d/go.sum" | sha256sum | cut -c1-16
}

# ensure_refregistry: tests/refregistry, as OCIGO_REFREGISTRY.
ensure_refregistry() {
	ensure_go_tool OCIGO_REFREGISTRY refregistry "$(refregistry_hash)" "$OCIGO_ROOT/tests/refregistry"
}

# An independent CycloneDX validator for the SBOM tests: the CycloneDX
# project's Python library (its JSON schema validation, strict mode),
# pinned, in a venv of its own. Keep in step with tests/common/cyclonedx.rs.
CYCLONEDX_LIB_VERSION=11.12.0

# ensure_cyclonedx_validator: its python, as OCIGO_CYCLONEDX_PYTHON.
ensure_cyclonedx_validator() {
	ensure_pip_venv OCIGO_CYCLONEDX_PYTHON "cyclonedx-python-lib-$CYCLONEDX_LIB_VERSION" \
		cyclonedx-python-lib "$CYCLONEDX_LIB_VERSION" python json-validation
}

# CNCF distribution v3: a second registry implementation for the tests.
# (v3.1.2 has no OCI 1.1 referrers API either: it answers 404 there.)
# Keep in step with DISTRIBUTION_V3_VERSION in tests/common/registry.rs.
DISTRIBUTION_V3_VERSION=v3.1.2

# ensure_distribution_v3: distribution v3's `registry`, as OCIGO_REGISTRY_V3.
ensure_distribution_v3() {
	ensure_go_tool OCIGO_REGISTRY_V3 registry "$DISTRIBUTION_V3_VERSION" \
		github.com/distribution/distribution/v3/cmd/registry
}

# govulncheck, for the policy tests: they compare `ocigo policy check`'s
# vulnerability verdicts with govulncheck's, offline, over the database
# `ocigo pull --vulndb` wrote. Keep in step with tests/policy.rs.
GOVULNCHECK_VERSION=v1.9.0

# ensure_govulncheck: golang.org/x/vuln's govulncheck, as OCIGO_GOVULNCHECK.
ensure_govulncheck() {
	ensure_go_tool OCIGO_GOVULNCHECK govulncheck "$GOVULNCHECK_VERSION" golang.org/x/vuln/cmd/govulncheck
}

# check-jsonschema (PyPI), the independent validator the policy tests
# check SARIF and JSON output with, in a venv cached beside the tools.
CHECK_JSONSCHEMA_VERSION=0.39.0

# ensure_check_jsonschema: its executable, as OCIGO_CHECK_JSONSCHEMA.
ensure_check_jsonschema() {
	ensure_pip_venv OCIGO_CHECK_JSONSCHEMA "venv-check-jsonschema-$CHECK_JSONSCHEMA_VERSION" \
		check-jsonschema "$CHECK_JSONSCHEMA_VERSION" check-jsonschema
}

# ensure_script_deps: what the scripts (demo, realworld, bench,
# check-schemas) need on a fresh Debian machine: the apt packages above
# (only those missing) and go/cargo/python3/unshare on PATH.
ensure_script_deps() {
	ensure_apt_packages "${OCIGO_APT_PACKAGES[@]}"
	local t
	for t in go cargo python3 unshare; do
		command -v "$t" >/dev/null || die "$t is not on PATH"
	done
}

# ensure_test_deps: everything `cargo test` needs: ensure_script_deps,
# cosign v2 and v3 for the interop tests (OCIGO_COSIGN, OCIGO_COSIGN_V3),
# distribution v3, a second registry implementation (OCIGO_REGISTRY_V3),
# tests/refregistry, the registry with the referrers API
# (OCIGO_REFREGISTRY), and a CycloneDX validator (OCIGO_CYCLONEDX_PYTHON).
ensure_test_deps() {
	ensure_script_deps
	ensure_cosign
	ensure_cosign_v3
	ensure_distribution_v3
	ensure_refregistry
	ensure_cyclonedx_validator
	ensure_govulncheck
	ensure_check_jsonschema
}

# print_tool_versions: one line per tool the tests use.
print_tool_versions() {
	{
		echo "tool versions:"
		echo "  $(rustc --version)"
		echo "  $(cargo --version)"
		echo "  $(go version)"
		echo "  docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo '?')"
		echo "  htpasswd (apache2-utils $(dpkg-query -W -f='${Version}' apache2-utils 2>/dev/null || echo '?'))"
		echo "  $(openssl version 2>/dev/null || echo 'openssl: missing')"
		echo "  GNU time $(dpkg-query -W -f='${Version}' time 2>/dev/null || echo '?')"
		echo "  $(python3 --version 2>&1)"
		if [[ -n ${OCIGO_REGISTRY_V3:-} ]]; then
			echo "  distribution $("$OCIGO_REGISTRY_V3" --version 2>/dev/null | awk '{ print $3 }') ($OCIGO_REGISTRY_V3)"
		fi
		if [[ -n ${OCIGO_GOVULNCHECK:-} ]]; then
			echo "  govulncheck $GOVULNCHECK_VERSION ($OCIGO_GOVULNCHECK)"
		fi
		if [[ -n ${OCIGO_CHECK_JSONSCHEMA:-} ]]; then
			echo "  check-jsonschema $CHECK_JSONSCHEMA_VERSION ($OCIGO_CHECK_JSONSCHEMA)"
		fi
		if [[ -n ${OCIGO_COSIGN:-} ]]; then
			echo "  cosign: $("$OCIGO_COSIGN" version 2>/dev/null | awk '/^GitVersion/ { print $2 }') ($OCIGO_COSIGN)"
		fi
		if [[ -n ${OCIGO_COSIGN_V3:-} ]]; then
			echo "  cosign: $("$OCIGO_COSIGN_V3" version 2>/dev/null | awk '/^GitVersion/ { print $2 }') ($OCIGO_COSIGN_V3)"
		fi
		if [[ -n ${OCIGO_REFREGISTRY:-} ]]; then
			echo "  refregistry (go-containerregistry $(awk '/go-containerregistry / { print $2 }' "$OCIGO_ROOT/tests/refregistry/go.mod")) ($OCIGO_REFREGISTRY)"
		fi
	} >&2
}
