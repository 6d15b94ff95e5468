// A checksum database for ocigo's tests, built from golang.org/x/mod/sumdb
// (the same server code sum.golang.org's protocol is defined by): a test
// key made with note.GenerateKey, records appended to the log the first
// time a module version is looked up (sumdb.TestServer), their go.sum
// lines computed from a GOPROXY directory tree with dirhash, served over
// HTTP on 127.0.0.1.
//
//	sumdbfixture -proxy DIR [-name sumdb.test] [-fill N] [-cache-lookups]
//
// Prints "VKEY <verifier key>" and "URL http://127.0.0.1:<port>" on
// stdout, then serves until killed. GET /fill?n=N appends N filler
// records (module example.net/filler, versions v0.0.<k>), so a test can
// make the tree grow between two packs (/fork-lookup: see below). With -cache-lookups, a lookup is
// answered with the bytes of its first answer, signed in the tree of that
// time, as proxy.golang.org answers lookups from its cache; /latest
// always says the current head. GET /forged-tree?n=N answers a tree note
// of N records with a hash no log has, signed with the database's key:
// what a forked log would serve, for the tests that must refuse it.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	proxy := flag.String("proxy", "", "GOPROXY directory tree the modules' hashes are computed from")
	name := flag.String("name", "sumdb.test", "database name")
	fill := flag.Int("fill", 0, "filler records to add at start")
	cacheLookups := flag.Bool("cache-lookups", false, "answer a lookup with its first answer, as a caching proxy does")
	flag.Parse()
	if *proxy == "" {
		log.Fatal("-proxy is required")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		log.Fatal(err)
	}
	gosum := func(path, vers string) ([]byte, error) {
		if path == "example.net/filler" {
			return []byte(fmt.Sprintf("%s %s h1:filler%s=\n%s %s/go.mod h1:filler%s=\n", path, vers, vers, path, vers, vers)), nil
		}
		ep, err := module.EscapePath(path)
		if err != nil {
			return nil, err
		}
		ev, err := module.EscapeVersion(vers)
		if err != nil {
			return nil, err
		}
		base := filepath.Join(*proxy, ep, "@v", ev)
		zh, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
		if err != nil {
			return nil, err
		}
		mh, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(base + ".mod") })
		if err != nil {
			return nil, err
		}
		return []byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, vers, zh, path, vers, mh)), nil
	}
	ts := sumdb.NewTestServer(skey, gosum)
	var mu sync.Mutex
	next := 0
	add := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n; i++ {
			v := module.Version{Path: "example.net/filler", Version: "v0.0." + strconv.Itoa(next)}
			next++
			if _, err := ts.Lookup(context.Background(), v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(*fill); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	server := sumdb.NewServer(ts)
	var cmu sync.Mutex
	cached := map[string][]byte{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !*cacheLookups || !strings.HasPrefix(r.URL.Path, "/lookup/") {
			server.ServeHTTP(w, r)
			return
		}
		cmu.Lock()
		body, ok := cached[r.URL.Path]
		cmu.Unlock()
		if !ok {
			rec := httptest.NewRecorder()
			server.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				http.Error(w, rec.Body.String(), rec.Code)
				return
			}
			body = rec.Body.Bytes()
			cmu.Lock()
			cached[r.URL.Path] = body
			cmu.Unlock()
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.Write(body)
	})
	mux.HandleFunc("/fill", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err == nil {
			err = add(n)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	mux.HandleFunc("/forged-tree", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		text := tlog.FormatTree(tlog.Tree{N: n, Hash: tlog.RecordHash([]byte("forged\n"))})
		msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(msg)
	})
	// With -cache-lookups: GET /fork-lookup?path=/lookup/M@V re-signs the
	// cached answer for M@V in a forged tree of the same size (another
	// hash), as a forked log would serve it.
	mux.HandleFunc("/fork-lookup", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		cmu.Lock()
		defer cmu.Unlock()
		body, ok := cached[p]
		i := strings.Index(string(body), "go.sum database tree\n")
		if !ok || i < 0 {
			http.Error(w, "no cached lookup "+p, http.StatusNotFound)
			return
		}
		t, err := tlog.ParseTree(body[i:])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		text := tlog.FormatTree(tlog.Tree{N: t.N, Hash: tlog.RecordHash([]byte("forged\n"))})
		msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cached[p] = append(append([]byte{}, body[:i]...), msg...)
		fmt.Fprintln(w, "ok")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "VKEY %s\nURL http://%s\n", vkey, l.Addr())
	out.Flush()
	log.Fatal(http.Serve(l, mux))
}
