#!/usr/bin/env bash
# Validate what `ocigo pack` writes against schemas/*.schema.json:
# packs testdata/project (fixture modules through a file:// proxy) into an
# oci: layout three ways (plain; with --created; split into several
# manifests under an index), then checks with Python `jsonschema` that
#   - the schema itself is a valid draft 2020-12 schema,
#   - every config blob validates (formats checked, e.g. date-time),
#   - the media types / artifactType / part annotations are the documented
#     ones (schemas/README.md),
#   - the schema rejects configs that ocigo would reject (unknown field,
#     other formatVersion, malformed hashes and digests).
# Installs jsonschema with pip if it is missing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ensure_script_deps

if ! python3 -c 'import jsonschema, rfc3339_validator' 2>/dev/null; then
	log "installing python jsonschema (with the date-time format checker)"
	python3 -m pip install --quiet --disable-pip-version-check jsonschema rfc3339-validator >&2
fi

init_tmp ocigo-schemas
tmp=$OCIGO_TMP
ocigo=$(build_ocigo)
python3 "$OCIGO_ROOT/scripts/fixture-proxy.py" "$tmp/proxy"
cp -r "$OCIGO_ROOT/testdata/project" "$tmp/project"

pack() {
	env GOENV=off GOTOOLCHAIN=local GOFLAGS= \
		GOPROXY="file://$tmp/proxy" GONOSUMDB=example.com \
		"$ocigo" --quiet --store "$tmp/store" pack "$tmp/project" "$@" >&2
}
log "packing testdata/project into oci:$tmp/layout"
pack -o "oci:$tmp/layout:plain"
pack -o "oci:$tmp/layout:created" --created 2024-05-06T07:08:09Z
# A tiny manifest limit forces a split bundle (an index of parts).
pack -o "oci:$tmp/layout:split" --max-manifest-bytes 1200

log "validating against $OCIGO_ROOT/schemas/modules-config.v1.schema.json"
python3 - "$OCIGO_ROOT/schemas/modules-config.v1.schema.json" "$tmp/layout" <<'EOF'
import copy
import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

schema_path, layout = Path(sys.argv[1]), Path(sys.argv[2])
schema = json.loads(schema_path.read_text())
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
ARTIFACT = "application/vnd.ocigo.modules.v1"
CONFIG = "application/vnd.ocigo.modules.config.v1+json"
ZIP = "application/vnd.ocigo.module.v1.zip"
PART = "dev.ocigo.bundle.part"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def blob(digest):
    algo, hexd = digest.split(":", 1)
    return (layout / "blobs" / algo / hexd).read_bytes()


def configs_of(desc, where):
    """Yield (where, config JSON) for every part under a descriptor."""
    doc = json.loads(blob(desc["digest"]))
    check(doc.get("artifactType") == ARTIFACT, f"{where}: artifactType {doc.get('artifactType')!r}")
    if desc["mediaType"] == INDEX:
        check(doc.get("mediaType") == INDEX, f"{where}: index mediaType")
        n = len(doc["manifests"])
        for i, child in enumerate(doc["manifests"], 1):
            check(child["mediaType"] == MANIFEST, f"{where}: part {i} is not a manifest")
            check(child.get("artifactType") == ARTIFACT, f"{where}: part {i} artifactType")
            check(child.get("annotations", {}).get(PART) == f"{i}/{n}",
                  f"{where}: part {i} annotation {child.get('annotations')}")
            yield from configs_of(child, f"{where} part {i}/{n}")
        return
    check(doc.get("mediaType") == MANIFEST, f"{where}: manifest mediaType")
    check(doc["config"]["mediaType"] == CONFIG, f"{where}: config mediaType {doc['config']['mediaType']!r}")
    for layer in doc["layers"]:
        check(layer["mediaType"] == ZIP, f"{where}: layer mediaType {layer['mediaType']!r}")
    config = json.loads(blob(doc["config"]["digest"]))
    layers = [l["digest"] for l in doc["layers"]]
    named = [m["zip"]["layer"] for m in config.get("modules", []) if "zip" in m]
    check(layers == named, f"{where}: layers are not the config's zips in order")
    yield where, config


index = json.loads((layout / "index.json").read_text())
seen = {}
for desc in index["manifests"]:
    tag = desc.get("annotations", {}).get("org.opencontainers.image.ref.name", desc["digest"])
    for where, config in configs_of(desc, tag):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
        for e in errors:
            failures.append(f"{where}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
        seen.setdefault(tag, []).append(config)
        print(f"  {where}: {len(config['modules'])} modules, "
              f"{'valid' if not errors else f'{len(errors)} errors'}", file=sys.stderr)

check(set(seen) == {"plain", "created", "split"}, f"tags found: {sorted(seen)}")
check(len(seen.get("split", [])) > 1, "the split bundle has only one part")
check("created" in seen.get("created", [{}])[0], "--created did not set created")
check("created" not in seen.get("plain", [{}])[0], "created is set without --created")

# The schema must reject what ocigo rejects.
good = seen["plain"][0]
zipped = next(i for i, m in enumerate(good["modules"]) if "zip" in m)
modonly = next((i for i, m in enumerate(good["modules"]) if "zip" not in m), None)
check(modonly is not None, "no go.mod-only module in the fixture bundle")


def mutated(fn):
    c = copy.deepcopy(good)
    fn(c)
    return c


bad = {
    "unknown top-level field": lambda c: c.update(extra=1),
    "formatVersion 2": lambda c: c.update(formatVersion=2),
    "missing modules": lambda c: c.pop("modules"),
    "created not a date-time": lambda c: c.update(created="yesterday"),
    "platform not os/arch": lambda c: c.update(platforms=["linux"]),
    "unknown main module field": lambda c: c["mainModules"][0].update(dir="/x"),
    "unknown module field": lambda c: c["modules"][zipped].update(sum="x"),
    "modHash not h1": lambda c: c["modules"][zipped].update(modHash="h2:" + "A" * 43 + "="),
    "modHash too short": lambda c: c["modules"][zipped].update(modHash="h1:abc="),
    "missing mod": lambda c: c["modules"][zipped].pop("mod"),
    "non-canonical version": lambda c: c["modules"][zipped].update(version="1.0.0"),
    "zip.layer not sha256": lambda c: c["modules"][zipped]["zip"].update(layer="sha512:" + "a" * 64),
    "zip.layer upper-case hex": lambda c: c["modules"][zipped]["zip"].update(layer="sha256:" + "A" * 64),
    "zip.hash malformed": lambda c: c["modules"][zipped]["zip"].update(hash="h1:!"),
    "zip.size negative": lambda c: c["modules"][zipped]["zip"].update(size=-1),
    "zip without size": lambda c: c["modules"][zipped]["zip"].pop("size"),
}
for what, fn in bad.items():
    check(not validator.is_valid(mutated(fn)), f"schema accepts a config with {what}")
print(f"  schema rejects all {len(bad)} malformed variants"
      if not any(f.startswith("schema accepts") for f in failures) else "", file=sys.stderr)

if failures:
    print("schema check FAILED:", file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
total = sum(len(v) for v in seen.values())
print(f"{total} config blobs valid against {schema_path.name}", file=sys.stderr)
EOF

# The host configuration: the schema accepts what ocigo accepts (ocigo itself
# is the judge: a pull with each file as OCIGO_CONFIG) and refuses the rest.
log "validating against $OCIGO_ROOT/schemas/host-config.v1.schema.json"
mkdir -p "$tmp/host"
printf '%s\n' '{"pull":{"requireSignature":true,"verifyKeys":["/etc/ocigo/release.pub"],"threshold":1}}' >"$tmp/host/good.json"
printf '%s\n' '{"pull":{"verifyKeys":["release.pub"]}}' >"$tmp/host/relative.json"
printf '%s\n' '{"pull":{"requireSignatures":true}}' >"$tmp/host/typo.json"
python3 - "$OCIGO_ROOT/schemas/host-config.v1.schema.json" "$tmp/host" <<'EOF'
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

schema = json.loads(Path(sys.argv[1]).read_text())
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
d = Path(sys.argv[2])
assert v.is_valid(json.loads((d / "good.json").read_text())), "schema refuses a good host config"
for bad in ["relative.json", "typo.json"]:
    assert not v.is_valid(json.loads((d / bad).read_text())), f"schema accepts {bad}"
print("  host-config schema: accepts the README example, refuses a relative key and a typo", file=sys.stderr)
EOF
for bad in relative typo; do
	if OCIGO_CONFIG="$tmp/host/$bad.json" "$ocigo" --store "$tmp/host/store" \
		pull "oci:$tmp/layout:plain" --gomodcache "$tmp/host/gomodcache" >/dev/null 2>"$tmp/host/err"; then
		die "ocigo accepted the host config $bad.json that the schema refuses"
	fi
	grep -q "$bad.json" "$tmp/host/err" || die "ocigo's error does not name $bad.json: $(cat "$tmp/host/err")"
done
log "packing the host GOROOT as a toolchain; validating against schemas/toolchain-config.v1.schema.json"
"$ocigo" --quiet --store "$tmp/store" pack toolchain --from-goroot "$(go env GOROOT)" \
	-o "oci:$tmp/toolchain:host" >&2
python3 - "$OCIGO_ROOT/schemas/toolchain-config.v1.schema.json" "$tmp/toolchain" <<'EOF'
import copy
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

schema = json.loads(Path(sys.argv[1]).read_text())
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
layout = Path(sys.argv[2])
blob = lambda d: json.loads((layout / "blobs/sha256" / d.split(":")[1]).read_text())
top = json.loads((layout / "index.json").read_text())["manifests"][0]
index = blob(top["digest"])
assert index["artifactType"] == "application/vnd.ocigo.toolchain.v1", index
n = 0
for entry in index["manifests"]:
    assert entry["artifactType"] == "application/vnd.ocigo.toolchain.v1"
    assert "platform" in entry and "dev.ocigo.toolchain.version" in entry["annotations"]
    m = blob(entry["digest"])
    assert m["config"]["mediaType"] == "application/vnd.ocigo.toolchain.config.v1+json"
    config = blob(m["config"]["digest"])
    errors = list(v.iter_errors(config))
    assert not errors, errors[:3]
    assert [l["digest"] for l in m["layers"]] == [l["digest"] for l in config["layers"]]
    assert all(l["mediaType"] == "application/vnd.ocigo.toolchain.layer.v1.tar+zstd" for l in m["layers"])
    for mutate in [lambda c: c.update(extra=1), lambda c: c.update(formatVersion=2),
                   lambda c: c["module"].update(hash="h1:short"), lambda c: c["layers"][0].update(digest="sha256:x")]:
        bad = copy.deepcopy(config)
        mutate(bad)
        assert not v.is_valid(bad), "schema accepts a config ocigo refuses"
    n += 1
print(f"  toolchain config: {n} valid, mutations refused", file=sys.stderr)
EOF
log "schemas OK"
