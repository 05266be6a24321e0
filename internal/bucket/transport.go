package bucket

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Idle limits of pooled transports: an idle connection closes after TransportIdleTimeout,
// so a manager at rest holds no connection (and no connection goroutine) whatever the
// number of sources; a transport nobody used for TransportEvictAfter leaves the pool.
const (
	TransportIdleTimeout = 90 * time.Second
	TransportEvictAfter  = 10 * time.Minute
	// MaxIdleConnsPerHost: the files of one source are downloaded in parallel from one host.
	MaxIdleConnsPerHost = 32
)

// TransportPool shares HTTP transports, and so their keep-alive connections, between the
// clients of sources that reach the same endpoint with the same credentials and the same
// TLS trust: one connection pool per (endpoint, credentials, CA bundle, endpoint policy)
// instead of one per discovery. Safe for concurrent use; the zero value is ready.
type TransportPool struct {
	mu      sync.Mutex
	entries map[string]*pooledTransport
	now     func() time.Time
}

type pooledTransport struct {
	tr       *http.Transport
	lastUsed time.Time
}

// NewTransportPool returns an empty pool.
func NewTransportPool() *TransportPool { return &TransportPool{} }

// Len is the number of transports in the pool.
func (p *TransportPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// get returns the pooled transport for key, building it with build the first time, and
// evicts transports unused for TransportEvictAfter (closing their idle connections).
func (p *TransportPool) get(key string, build func() (*http.Transport, error)) (*http.Transport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	if p.entries == nil {
		p.entries = map[string]*pooledTransport{}
	}
	for k, e := range p.entries {
		if k != key && now.Sub(e.lastUsed) > TransportEvictAfter {
			e.tr.CloseIdleConnections()
			delete(p.entries, k)
		}
	}
	if e, ok := p.entries[key]; ok {
		e.lastUsed = now
		return e.tr, nil
	}
	tr, err := build()
	if err != nil {
		return nil, err
	}
	p.entries[key] = &pooledTransport{tr: tr, lastUsed: now}
	return tr, nil
}

// transportKey names everything that decides where a transport's connections go and what
// they trust, plus who signs the requests sent over them. Secrets enter only as a hash.
func transportKey(cfg Config, exempt []netip.AddrPort) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s|", len(s), s) }
	field(cfg.Endpoint)
	field(fmt.Sprintf("%p", cfg.Policy))
	for _, e := range cfg.customEndpoints() {
		field(e)
	}
	for _, a := range exempt {
		field(a.String())
	}
	field(string(cfg.CABundle))
	field(os.Getenv("AWS_CA_BUNDLE"))
	switch {
	case cfg.WebIdentity != nil:
		field("web-identity")
		field(cfg.WebIdentity.RoleARN)
		field(cfg.WebIdentity.SessionName)
	case cfg.Credentials != nil:
		field("static")
		field(cfg.Credentials.AccessKeyID)
		field(cfg.Credentials.SecretAccessKey)
		field(cfg.Credentials.SessionToken)
	default:
		field("default-chain")
	}
	if ar := cfg.AssumeRole; ar != nil {
		field(ar.RoleARN)
		field(ar.ExternalID)
	}
	return hex.EncodeToString(h.Sum(nil))
}
