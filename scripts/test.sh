#!/usr/bin/env bash
# The one test command: installs what the tests need (only what is missing:
# docker-registry, apache2-utils, iproute2, strace, GNU time, curl,
# openssl via apt; cosign v2 and v3, distribution v3 and tests/refregistry
# built once into ~/.cache/ocigo-ci/bin and exported as OCIGO_COSIGN,
# OCIGO_COSIGN_V3, OCIGO_REGISTRY_V3, OCIGO_REFREGISTRY), then runs every
# test target:
#
#   scripts/test.sh                      # cargo test --all-targets
#   scripts/test.sh --test registry_client
#   scripts/test.sh some_test_name -- --nocapture
#
# Extra arguments go to `cargo test --all-targets` as they are. The tests
# need root (they run the go command under `unshare -n`) and the Go module
# proxy only for the first builds of cosign and of the tests' Go helpers
# (tests/containers-policy, tests/gojudge, tests/sumdbfixture: built by the tests themselves,
# cached under target/tmp).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ensure_test_deps
cd "$OCIGO_ROOT"
log "cargo test --all-targets $*"
cargo test "${CARGO_LOCK_FLAGS[@]}" --all-targets "$@"
