// Command refregistry is the test suite's registry WITH the OCI 1.1
// referrers API: go-containerregistry's in-process registry
// (pkg/registry, the one `crane registry serve` runs) with referrers
// support turned on, plus a thin layer that brings its referrers
// answers up to the distribution spec where the library falls short
// (see fixReferrers and the OCI-Subject header below).
//
// Usage: refregistry -addr 127.0.0.1:PORT [-blobs DIR] [-accesslog FILE]
//
// It prints "listening on ADDR" once it accepts connections. Manifests
// live in memory (the library keeps them there); blobs in memory or in
// DIR. Anonymous: anyone may pull and push. It is a test fixture, never
// a production registry.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

const indexMediaType = "application/vnd.oci.image.index.v1+json"

// maxManifest bounds the manifest bodies this layer reads (distribution's limit).
const maxManifest = 4 << 20

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// manifestFields are the parts of a manifest the referrers answer needs.
type manifestFields struct {
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
}

type shim struct {
	inner  http.Handler
	logMu  sync.Mutex
	access io.Writer
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	blobs := flag.String("blobs", "", "directory for blobs (default: memory)")
	accessLog := flag.String("accesslog", "", "append one line per request to this file")
	flag.Parse()

	opts := []registry.Option{
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(io.Discard, "", 0)),
	}
	if *blobs != "" {
		if err := os.MkdirAll(*blobs, 0o755); err != nil {
			log.Fatal(err)
		}
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(*blobs)))
	}
	s := &shim{inner: registry.New(opts...)}
	if *accessLog != "" {
		f, err := os.OpenFile(*accessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		s.access = f
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, s))
}

func (s *shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The line is written when the status is (before the body), so a
	// client that has read the answer finds its request in the log.
	rec := &statusRecorder{ResponseWriter: w, status: 200, log: func(status int) {
		if s.access == nil {
			return
		}
		s.logMu.Lock()
		defer s.logMu.Unlock()
		// The same shape as distribution's access log, so scripts can count requests.
		fmt.Fprintf(s.access, "%s - - \"%s %s %s\" %d\n", r.RemoteAddr, r.Method, r.URL.RequestURI(), r.Proto, status)
	}}
	switch {
	case r.Method == http.MethodGet && isReferrers(r.URL.Path):
		s.referrers(rec, r)
	case r.Method == http.MethodPut && isManifest(r.URL.Path):
		s.putManifest(rec, r)
	default:
		s.inner.ServeHTTP(rec, r)
	}
	rec.logOnce()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	logged bool
	log    func(status int)
}

func (r *statusRecorder) logOnce() {
	if !r.logged {
		r.logged = true
		r.log(r.status)
	}
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.logOnce()
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.logOnce()
	return r.ResponseWriter.Write(b)
}

// /v2/<name>/referrers/<digest>
func isReferrers(path string) bool {
	elems := strings.Split(path, "/")
	return len(elems) >= 5 && elems[1] == "v2" && elems[len(elems)-2] == "referrers"
}

// /v2/<name>/manifests/<reference>
func isManifest(path string) bool {
	elems := strings.Split(path, "/")
	return len(elems) >= 5 && elems[1] == "v2" && elems[len(elems)-2] == "manifests"
}

// putManifest passes the PUT on and, when the manifest has a subject and
// was stored, answers with the OCI-Subject header (which the library
// does not send), as the distribution spec asks of a registry that
// processes subjects.
func (s *shim) putManifest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil || len(body) > maxManifest {
		http.Error(w, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest too large or unreadable"}]}`, http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, r)
	var m manifestFields
	if rec.Code == http.StatusCreated && json.Unmarshal(body, &m) == nil && m.Subject != nil && m.Subject.Digest != "" {
		rec.Header().Set("OCI-Subject", m.Subject.Digest)
	}
	copyResponse(w, rec)
}

// referrers answers the referrers API from the library's answer, fixing
// what it gets wrong: a descriptor's artifactType is the manifest's
// artifactType (the library always uses the config media type); the
// artifactType query filters the list (the library ignores it; the
// answer then says OCI-Filters-Applied: artifactType); the list is
// sorted by digest (the library's order is a Go map's); and an unknown
// repository gets an empty index, not 404 (a registry with the API never
// answers 404 there).
func (s *shim) referrers(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, r)
	idx := index{SchemaVersion: 2, MediaType: indexMediaType, Manifests: []descriptor{}}
	switch rec.Code {
	case http.StatusOK:
		if err := json.Unmarshal(rec.Body.Bytes(), &idx); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	case http.StatusNotFound:
		// Unknown repository: no referrers.
	default:
		copyResponse(w, rec)
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/referrers/"+lastElem(r.URL.Path))
	want := r.URL.Query()["artifactType"]
	kept := []descriptor{}
	for _, d := range idx.Manifests {
		if at, ok := s.artifactType(name, d.Digest); ok {
			d.ArtifactType = at
		}
		if len(want) > 0 && !contains(want, d.ArtifactType) {
			continue
		}
		kept = append(kept, d)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Digest < kept[j].Digest })
	idx.Manifests = kept
	out, _ := json.Marshal(idx)
	w.Header().Set("Content-Type", indexMediaType)
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	if len(want) > 0 {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// artifactType reads a stored manifest: its artifactType, else its
// config's media type (the image spec's rule for referrers).
func (s *shim) artifactType(name, digest string) (string, bool) {
	req := httptest.NewRequest(http.MethodGet, "/v2/"+name+"/manifests/"+digest, nil)
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return "", false
	}
	var m manifestFields
	if json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		return "", false
	}
	if m.ArtifactType != "" {
		return m.ArtifactType, true
	}
	if m.Config != nil {
		return m.Config.MediaType, true
	}
	return "", true
}

func lastElem(path string) string {
	return path[strings.LastIndex(path, "/")+1:]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}
