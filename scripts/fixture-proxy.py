#!/usr/bin/env python3
"""Build the static file:// GOPROXY tree of the fixture modules.

Usage: scripts/fixture-proxy.py DEST [MODULES_DIR]

The same layout as tests/common/fixtures.rs::build_file_proxy (see
testdata/README.md and FORMATS.md section 4), from testdata/modules (or
MODULES_DIR), where each `<module path>@<version>/` directory holds one
module version's plain files:

  DEST/<esc path>/@v/list          canonical versions, semver order, one a line
  DEST/<esc path>/@v/<esc v>.info  {"Version":"<v>","Time":"2023-01-02T03:04:05Z"}
  DEST/<esc path>/@v/<esc v>.mod   the module's go.mod, or for a module with
                                   none (+incompatible) `module <path>\\n`
  DEST/<esc path>/@v/<esc v>.zip   entries `<path>@<version>/<file>`, files
                                   only, sorted bytewise, fixed timestamps and
                                   modes, deflated

Output is deterministic. The zip bytes need not equal the Rust harness's:
h1 hashes (go.sum) depend only on entry names and contents.
"""

import functools
import os
import sys
import zipfile
from pathlib import Path

FIXTURE_TIME = "2023-01-02T03:04:05Z"


def escape_path(s: str) -> str:
    """Module cache case escaping: upper-case ASCII -> '!' + lower case."""
    out = []
    for c in s:
        if not c.isascii() or c == "!":
            raise ValueError(f"unescapable character {c!r} in {s!r}")
        out.append("!" + c.lower() if "A" <= c <= "Z" else c)
    return "".join(out)


def semver_cmp(a: str, b: str) -> int:
    """Semantic version order of canonical versions; ties by the string."""

    def split(v):
        v = v[1:] if v.startswith("v") else v
        v = v.split("+", 1)[0]
        core, _, pre = v.partition("-")
        return [int(n) for n in core.split(".")], (pre if "-" in v else None)

    def pre_cmp(p, q):
        xs, ys = p.split("."), q.split(".")
        for x, y in zip(xs, ys):
            if x.isdigit() and y.isdigit():
                o = (int(x) > int(y)) - (int(x) < int(y))
            elif x.isdigit():
                o = -1
            elif y.isdigit():
                o = 1
            else:
                o = (x > y) - (x < y)
            if o:
                return o
        return (len(xs) > len(ys)) - (len(xs) < len(ys))

    (an, ap), (bn, bp) = split(a), split(b)
    o = (an > bn) - (an < bn)
    if not o:
        if ap is None and bp is None:
            o = 0
        elif ap is None:
            o = 1
        elif bp is None:
            o = -1
        else:
            o = pre_cmp(ap, bp)
    return o or (a > b) - (a < b)


def find_modules(root: Path):
    """(path, version, dir) for every `<path>@<version>` directory."""
    out = []

    def walk(d: Path, prefix: str):
        for entry in sorted(d.iterdir()):
            if not entry.is_dir():
                continue
            name = entry.name
            if "@" in name:
                last, version = name.split("@", 1)
                path = f"{prefix}/{last}" if prefix else last
                out.append((path, version, entry))
            else:
                walk(entry, f"{prefix}/{name}" if prefix else name)

    walk(root, "")
    out.sort(key=functools.cmp_to_key(
        lambda a, b: (a[0] > b[0]) - (a[0] < b[0]) or semver_cmp(a[1], b[1])))
    return out


def module_files(d: Path):
    """Relative '/'-separated file names, sorted bytewise."""
    files = []
    for dirpath, dirnames, filenames in os.walk(d):
        for f in filenames:
            full = Path(dirpath) / f
            if full.is_symlink() or not full.is_file():
                raise SystemExit(f"fixture {full} is not a regular file")
            files.append(full.relative_to(d).as_posix())
    return sorted(files, key=lambda s: s.encode())


def zip_bytes(path: str, version: str, d: Path, dest: Path):
    with zipfile.ZipFile(dest, "w") as z:
        for name in module_files(d):
            info = zipfile.ZipInfo(f"{path}@{version}/{name}",
                                   date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix
            info.external_attr = 0o100644 << 16
            z.writestr(info, (d / name).read_bytes())


def build_file_proxy(dest: Path, modules_dir: Path) -> int:
    modules = find_modules(modules_dir)
    if not modules:
        raise SystemExit(f"no fixture modules found under {modules_dir}")
    lists = {}
    for path, version, d in modules:
        at_v = dest / escape_path(path) / "@v"
        at_v.mkdir(parents=True, exist_ok=True)
        ev = escape_path(version)
        (at_v / f"{ev}.info").write_text(
            f'{{"Version":"{version}","Time":"{FIXTURE_TIME}"}}')
        go_mod = d / "go.mod"
        mod = go_mod.read_bytes() if go_mod.is_file() else f"module {path}\n".encode()
        (at_v / f"{ev}.mod").write_bytes(mod)
        zip_bytes(path, version, d, at_v / f"{ev}.zip")
        lists.setdefault(path, []).append(version)
    for path, versions in lists.items():
        versions.sort(key=functools.cmp_to_key(semver_cmp))
        (dest / escape_path(path) / "@v" / "list").write_text(
            "".join(v + "\n" for v in versions))
    return len(modules)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    dest = Path(sys.argv[1])
    root = Path(__file__).resolve().parent.parent
    modules_dir = Path(sys.argv[2]) if len(sys.argv) == 3 else root / "testdata" / "modules"
    n = build_file_proxy(dest, modules_dir)
    print(f"fixture proxy: {n} module versions in {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
