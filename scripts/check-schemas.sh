#!/usr/bin/env bash
# Validate what `ocigo pack` writes against schemas/*.schema.json:
# packs testdata/project (fixture modules through a file:// proxy) into an
# oci: layout three ways (plain; with --created; in several parts), then
# checks with Python `jsonschema` (format v2; and the v1 bundles kept in
# testdata/bundle-v1 against the v1 schema) that
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
# Two paths per part on average: several parts under the index.
pack -o "oci:$tmp/layout:split" --paths-per-part 2

log "validating format v2 against schemas/{bundle,part}-config.v2, testdata/bundle-v1 against modules-config.v1"
python3 - "$OCIGO_ROOT/schemas" "$tmp/layout" "$OCIGO_ROOT/testdata/bundle-v1" <<'EOF'
import copy
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

schemas, layout, layout_v1 = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])


def validator_for(name):
    schema = json.loads((schemas / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


HEADER_V = validator_for("bundle-config.v2.schema.json")
PART_V = validator_for("part-config.v2.schema.json")
V1_V = validator_for("modules-config.v1.schema.json")

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
ARTIFACT = "application/vnd.ocigo.modules.v2"
ARTIFACT_V1 = "application/vnd.ocigo.modules.v1"
HEADER = "application/vnd.ocigo.bundle.config.v2+json"
PARTCFG = "application/vnd.ocigo.modules.part.v2+json"
CONFIG_V1 = "application/vnd.ocigo.modules.config.v1+json"
ZIP = "application/vnd.ocigo.module.v1.zip"
PART = "dev.ocigo.bundle.part"
ROLE = "dev.ocigo.bundle.role"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def blob(root, digest):
    algo, hexd = digest.split(":", 1)
    return (root / "blobs" / algo / hexd).read_bytes()


def validate(validator, config, where):
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    for e in errors:
        failures.append(f"{where}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
    return not errors


def manifest_of(root, desc, where, artifact, config_type):
    doc = json.loads(blob(root, desc["digest"]))
    check(doc.get("mediaType") == MANIFEST, f"{where}: manifest mediaType")
    check(doc.get("artifactType") == artifact, f"{where}: artifactType {doc.get('artifactType')!r}")
    check(doc["config"]["mediaType"] == config_type, f"{where}: config mediaType {doc['config']['mediaType']!r}")
    for layer in doc.get("layers", []):
        check(layer["mediaType"] == ZIP, f"{where}: layer mediaType {layer['mediaType']!r}")
    return doc, json.loads(blob(root, doc["config"]["digest"]))


def layers_match(doc, config, where):
    layers = [l["digest"] for l in doc["layers"]]
    named = [m["zip"]["layer"] for m in config.get("modules", []) if "zip" in m]
    check(layers == named, f"{where}: layers are not the config's zips in order")


def read_v2(desc, where):
    """(header config, [part configs]) of a v2 bundle."""
    check(desc["mediaType"] == INDEX, f"{where}: a v2 bundle is an index")
    index = json.loads(blob(layout, desc["digest"]))
    check(index.get("artifactType") == ARTIFACT, f"{where}: index artifactType")
    entries = index["manifests"]
    check(entries[0].get("annotations", {}).get(ROLE) == "header", f"{where}: first entry is not the header")
    hdoc, header = manifest_of(layout, entries[0], f"{where} header", ARTIFACT, HEADER)
    check(hdoc.get("layers", []) == [], f"{where}: the header has layers")
    validate(HEADER_V, header, f"{where} header")
    parts = []
    n = len(entries) - 1
    for i, child in enumerate(entries[1:], 1):
        w = f"{where} part {i}/{n}"
        check(child.get("artifactType") == ARTIFACT, f"{w}: artifactType on the index entry")
        check(child.get("annotations", {}).get(PART) == f"{i}/{n}", f"{w}: annotation {child.get('annotations')}")
        doc, config = manifest_of(layout, child, w, ARTIFACT, PARTCFG)
        layers_match(doc, config, w)
        validate(PART_V, config, w)
        parts.append(config)
    modules = [m for p in parts for m in p["modules"]]
    check(header["modules"] == len(modules), f"{where}: header counts {header['modules']} modules, parts hold {len(modules)}")
    check(header["zips"] == sum("zip" in m for m in modules), f"{where}: header zips")
    print(f"  {where}: header valid, {n} parts, {len(modules)} modules", file=sys.stderr)
    return header, parts


def read_v1(desc, where):
    configs = []
    if desc["mediaType"] == INDEX:
        index = json.loads(blob(layout_v1, desc["digest"]))
        check(index.get("artifactType") == ARTIFACT_V1, f"{where}: index artifactType")
        descs = index["manifests"]
    else:
        descs = [desc]
    for i, d in enumerate(descs, 1):
        doc, config = manifest_of(layout_v1, d, f"{where} {i}", ARTIFACT_V1, CONFIG_V1)
        layers_match(doc, config, f"{where} {i}")
        validate(V1_V, config, f"{where} {i}")
        configs.append(config)
    print(f"  v1 {where}: {len(configs)} configs valid", file=sys.stderr)
    return configs


def tags(root):
    index = json.loads((root / "index.json").read_text())
    return {d.get("annotations", {}).get("org.opencontainers.image.ref.name", d["digest"]): d
            for d in index["manifests"]}


seen = {tag: read_v2(desc, tag) for tag, desc in tags(layout).items()}
check(set(seen) == {"plain", "created", "split"}, f"tags found: {sorted(seen)}")
check(len(seen.get("split", (None, []))[1]) > 1, "the split bundle has only one part")
check("created" in seen["created"][0], "--created did not set created")
check("created" not in seen["plain"][0], "created is set without --created")
# Parts hold nothing bundle-specific: --created changes only the header.
check(seen["plain"][1] == seen["created"][1], "--created changed a part")
v1 = {tag: read_v1(desc, tag) for tag, desc in tags(layout_v1).items()}
check(set(v1) == {"v1", "v1-split"}, f"v1 tags found: {sorted(v1)}")

# The schemas must reject what ocigo rejects.
header = seen["plain"][0]
part = seen["plain"][1][0]
zipped = next(i for i, m in enumerate(part["modules"]) if "zip" in m)
modonly = next((i for i, m in enumerate(part["modules"]) if "zip" not in m), None)
check(modonly is not None, "no go.mod-only module in the fixture bundle")


def mutated(good, fn):
    c = copy.deepcopy(good)
    fn(c)
    return c


bad_part = {
    "unknown top-level field": lambda c: c.update(extra=1),
    "formatVersion 1": lambda c: c.update(formatVersion=1),
    "header fields in a part": lambda c: c.update(platforms=["linux/amd64"]),
    "missing modules": lambda c: c.pop("modules"),
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
bad_header = {
    "unknown top-level field": lambda c: c.update(extra=1),
    "formatVersion 1": lambda c: c.update(formatVersion=1),
    "modules listed in the header": lambda c: c.update(modules=[]),
    "missing zipBytes": lambda c: c.pop("zipBytes"),
    "created not a date-time": lambda c: c.update(created="yesterday"),
    "platform not os/arch": lambda c: c.update(platforms=["linux"]),
    "unknown main module field": lambda c: c["mainModules"][0].update(dir="/x"),
}
for what, fn in bad_part.items():
    check(not PART_V.is_valid(mutated(part, fn)), f"part schema accepts a config with {what}")
for what, fn in bad_header.items():
    check(not HEADER_V.is_valid(mutated(header, fn)), f"header schema accepts a config with {what}")
good_v1 = v1["v1"][0]
check(not V1_V.is_valid(mutated(good_v1, lambda c: c.update(formatVersion=2))), "v1 schema accepts formatVersion 2")
if not any(f.startswith(("part schema accepts", "header schema accepts")) for f in failures):
    print(f"  schemas reject all {len(bad_part) + len(bad_header)} malformed variants", file=sys.stderr)

if failures:
    print("schema check FAILED:", file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print("every config blob is valid against its schema", file=sys.stderr)
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
log "packing it again as deltas of an 'earlier release' (a copy with another VERSION); validating against schemas/toolchain-config.v2.schema.json"
cp -r "$(go env GOROOT)" "$tmp/base-goroot"
sed -i '1s/.*/go1.1.1/' "$tmp/base-goroot/VERSION"
"$ocigo" --quiet --store "$tmp/store" pack toolchain --from-goroot "$tmp/base-goroot" \
	-o "oci:$tmp/toolchain-base:base" >&2
"$ocigo" --quiet --store "$tmp/store" pack toolchain --from-goroot "$(go env GOROOT)" \
	--delta-from "oci:$tmp/toolchain-base:base" -o "oci:$tmp/toolchain-delta:delta" >&2
python3 - "$OCIGO_ROOT/schemas/toolchain-config.v2.schema.json" "$tmp/toolchain-delta" <<'EOF'
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
(entry,) = index["manifests"]
m = blob(entry["digest"])
assert m["config"]["mediaType"] == "application/vnd.ocigo.toolchain.config.v2+json"
config = blob(m["config"]["digest"])
errors = list(v.iter_errors(config))
assert not errors, errors[:3]
own, bases = config["layers"], config["bases"]
assert [l["digest"] for l in m["layers"]] == [l["digest"] for l in own + bases]
for l, d in zip(own + bases, m["layers"]):
    want = "delta.v1.tar" if "deltaFrom" in l else "layer.v1.tar+zstd"
    assert d["mediaType"] == "application/vnd.ocigo.toolchain." + want, d
assert sorted(l["name"] for l in own if "deltaFrom" in l) == ["bin", "pkg/tool"], own
for mutate in [lambda c: c.update(extra=1), lambda c: c.update(formatVersion=1),
               lambda c: c.pop("bases"), lambda c: c.pop("baseVersion"),
               lambda c: [l.pop("deltaFrom", None) for l in c["layers"]],
               lambda c: c["bases"][0].update(deltaFrom=[c["bases"][0]["digest"]])]:
    bad = copy.deepcopy(config)
    mutate(bad)
    assert not v.is_valid(bad), "schema accepts a config ocigo refuses"
print("  toolchain delta config: valid, mutations refused", file=sys.stderr)
EOF
log "schemas OK"
