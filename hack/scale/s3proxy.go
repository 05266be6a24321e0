package main

import (
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// s3Counter is a reverse proxy in front of MinIO that counts the S3 requests passing
// through it by operation, exactly and at once (MinIO's own metrics lag by seconds). The
// manager's sources name the proxy as their endpoint; SigV4 signs the Host header, which
// the proxy passes on unchanged.
type s3Counter struct {
	URL    string
	server *http.Server

	mu       sync.Mutex
	counts   map[string]float64
	bySource map[string]float64 // requests by the source whose prefix they name
}

func startS3Counter(target string) (*s3Counter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &s3Counter{URL: "http://" + l.Addr().String(), counts: map[string]float64{}, bySource: map[string]float64{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	c.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add(s3Operation(r), s3Source(r))
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = c.server.Serve(l) }()
	return c, nil
}

func (c *s3Counter) add(op, source string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[op]++
	if source != "" {
		c.bySource[source]++
	}
}

func (c *s3Counter) snapshot() (byOp, bySource map[string]float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts), maps.Clone(c.bySource)
}

// s3Source names the source a request is for: each source's prefix is its name and a
// slash, so it is the first segment of the object key (path style) or of the listed prefix.
func s3Source(r *http.Request) string {
	key := r.URL.Query().Get("prefix")
	if key == "" {
		if _, k, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
			key = k
		}
	}
	src, _, _ := strings.Cut(key, "/")
	return src
}

func (c *s3Counter) close() { _ = c.server.Close() }

// s3Operation names the S3 operation of a path-style request.
func s3Operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "HeadObject"
	case r.Method == http.MethodPut:
		return "PutObject"
	}
	return r.Method + " other"
}
