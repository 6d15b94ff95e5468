// A checksum database for ocigo's tests, built from golang.org/x/mod/sumdb
// (the same server code sum.golang.org's protocol is defined by): a test
// key made with note.GenerateKey, records appended to the log the first
// time a module version is looked up (sumdb.TestServer), their go.sum
// lines computed from a GOPROXY directory tree with dirhash, served over
// HTTP on 127.0.0.1.
//
//	sumdbfixture -proxy DIR [-name sumdb.test] [-fill N]
//
// Prints "VKEY <verifier key>" and "URL http://127.0.0.1:<port>" on
// stdout, then serves until killed. GET /fill?n=N appends N filler
// records (module example.net/filler, versions v0.0.<k>), so a test can
// make the tree grow between two packs.
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
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	proxy := flag.String("proxy", "", "GOPROXY directory tree the modules' hashes are computed from")
	name := flag.String("name", "sumdb.test", "database name")
	fill := flag.Int("fill", 0, "filler records to add at start")
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
	mux.Handle("/", sumdb.NewServer(ts))
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "VKEY %s\nURL http://%s\n", vkey, l.Addr())
	out.Flush()
	log.Fatal(http.Serve(l, mux))
}
