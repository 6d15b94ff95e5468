// Command gojudge answers, for tests/go_rules.rs, what golang.org/x/mod (the
// code inside the go command) says about module paths, file paths,
// path/version pairs and module zips.
//
// It reads one JSON request per line on stdin and writes one JSON answer
// per line on stdout:
//
//	{"op":"path"|"import"|"file", "path":HEX}
//	{"op":"check", "path":HEX, "version":V}
//	{"op":"zip", "path":HEX, "version":V, "zip":FILE}
//
// Paths travel hex-encoded so that any byte string survives JSON. The
// answer is {"ok":bool, "err":"...", "h1":"..."}; for "check", ok is
// module.Check and "canonical" whether module.CanonicalVersion(V) == V;
// for "zip", ok means the go command would accept the zip on download:
// archive/zip opens it, every name has the path@version/ prefix,
// dirhash.HashZip succeeds (h1 is its result), zip.CheckZip passes and
// zip.Unzip extracts it.
package main

import (
	"archive/zip"
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

type request struct {
	Op      string `json:"op"`
	Path    string `json:"path"`
	Version string `json:"version"`
	Zip     string `json:"zip"`
}

type answer struct {
	OK        bool   `json:"ok"`
	Err       string `json:"err,omitempty"`
	H1        string `json:"h1,omitempty"`
	Canonical bool   `json:"canonical,omitempty"`
}

func verdict(err error) answer {
	if err != nil {
		return answer{Err: err.Error()}
	}
	return answer{OK: true}
}

func judgeZip(m module.Version, file string) answer {
	f, err := os.Open(file)
	if err != nil {
		return verdict(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return verdict(err)
	}
	z, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return verdict(err)
	}
	prefix := m.Path + "@" + m.Version + "/"
	for _, zf := range z.File {
		if !strings.HasPrefix(zf.Name, prefix) {
			return verdict(fmt.Errorf("zip for %s has unexpected file %s", prefix[:len(prefix)-1], zf.Name))
		}
	}
	h1, err := dirhash.HashZip(file, dirhash.DefaultHash)
	if err != nil {
		return verdict(err)
	}
	if _, err := modzip.CheckZip(m, file); err != nil {
		return verdict(err)
	}
	dir, err := os.MkdirTemp("", "gojudge")
	if err != nil {
		return verdict(err)
	}
	defer os.RemoveAll(dir)
	if err := modzip.Unzip(dir+"/x", m, file); err != nil {
		return verdict(err)
	}
	return answer{OK: true, H1: h1}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "gojudge: bad request:", err)
			os.Exit(2)
		}
		raw, err := hex.DecodeString(req.Path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gojudge: bad hex path:", err)
			os.Exit(2)
		}
		p := string(raw)
		var a answer
		switch req.Op {
		case "path":
			a = verdict(module.CheckPath(p))
		case "import":
			a = verdict(module.CheckImportPath(p))
		case "file":
			a = verdict(module.CheckFilePath(p))
		case "check":
			a = verdict(module.Check(p, req.Version))
			a.Canonical = module.CanonicalVersion(req.Version) == req.Version
		case "zip":
			a = judgeZip(module.Version{Path: p, Version: req.Version}, req.Zip)
		default:
			fmt.Fprintln(os.Stderr, "gojudge: unknown op", req.Op)
			os.Exit(2)
		}
		if err := enc.Encode(a); err != nil {
			fmt.Fprintln(os.Stderr, "gojudge:", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "gojudge:", err)
		os.Exit(1)
	}
	out.Flush()
}
