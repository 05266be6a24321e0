package receiver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// With several replicas each source is served by one of them (its shard's holder), but
// a Service routes a sender's request to any. The replica that gets it authenticates
// and parses it as usual; when another replica serves the source it hands the request
// on with the same path and body, authenticated by a MAC keyed with the token's hash
// (forwardMAC) so that the owner checks it against its own copy of the token while the
// token itself never leaves the replica it was sent to, and answers the sender with the
// owner's answer. One hop at most: a
// replica that gets a handed-on request for a source it does not serve (the shard moved
// meanwhile) answers 503 and the sender retries, as it does while no replica serves the
// shard.

// Route is where a source's events are acted on, as this replica knows it.
type Route struct {
	// Local: this replica serves the source.
	Local bool
	// Owner is the host:port of the receiver of the replica serving the source; "" when
	// none is known (the shard is being handed over, or its holder published no address).
	Owner string
}

// ForwardedHeader carries the MAC of a request one replica handed on to another
// (forwardMAC). A replica that gets one for a source it does not serve answers 503
// instead of handing it on again, so requests cannot loop or multiply; a wrong MAC is
// answered 401.
const ForwardedHeader = "X-Dataimport-Forwarded-Mac"

// forwardMAC authenticates a handed-on request without the token: HMAC-SHA256 of its
// path and body keyed with the token's SHA-256, which every replica registering the
// source holds. Whoever reaches a forged owner address (the address comes from a Lease)
// learns nothing that authenticates another body, nor the token; a replayed body is an
// event already seen, which changes nothing.
func forwardMAC(tokenSum [sha256.Size]byte, path string, body []byte) []byte {
	m := hmac.New(sha256.New, tokenSum[:])
	m.Write([]byte(path))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

// validMAC checks a ForwardedHeader value in constant time.
func validMAC(mac string, tokenSum [sha256.Size]byte, path string, body []byte) bool {
	got, err := hex.DecodeString(mac)
	return err == nil && hmac.Equal(got, forwardMAC(tokenSum, path, body))
}

// RetryAfter is the Retry-After of a 503: about how long a shard handover or an owner's
// restart takes to settle (a Lease renew period with the default 30 s Lease is 10 s).
const RetryAfter = 10 * time.Second

// ForwardTimeout bounds a request handed on to the owner (the owner only queues keys).
const ForwardTimeout = 10 * time.Second

// maxOwnerAnswer bounds how much of the owner's answer is read and relayed.
const maxOwnerAnswer = 4 << 10

// Action is what a replica does with an authenticated event naming keys of a source.
type Action int

const (
	// ActEnqueue: this replica serves the source; it queues the keys.
	ActEnqueue Action = iota
	// ActForward: hand the request to the owner.
	ActForward
	// ActUnavailable: answer 503 with Retry-After, so the sender retries.
	ActUnavailable
)

// Decide routes an authenticated event. forwarded says the request was already handed
// on once.
func Decide(r Route, forwarded bool) Action {
	switch {
	case r.Local:
		return ActEnqueue
	case forwarded || r.Owner == "":
		return ActUnavailable
	}
	return ActForward
}

// NewForwardClient is the client that hands requests to other replicas: bounded in
// time, no proxy from the environment (the request carries the sender's token and goes
// pod to pod), no redirects followed.
func NewForwardClient() *http.Client {
	return &http.Client{
		Timeout: ForwardTimeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: ForwardTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// errOwnerUnreachable wraps a failure to reach the owner; its text holds no URL.
var errOwnerUnreachable = errors.New("the replica serving the source did not answer")

// forward hands an authenticated request to the owner's receiver at the same path with
// the same body, signed with forwardMAC, and returns the owner's answer.
func (h *Handler) forward(ctx context.Context, owner string, req *http.Request, tokenSum [sha256.Size]byte, body []byte) (code int, msg string, err error) {
	c := h.Forward
	if c == nil {
		c = defaultForwardClient
	}
	u := url.URL{Scheme: "http", Host: owner, Path: req.URL.Path}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, "", errOwnerUnreachable
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		out.Header.Set("Content-Type", ct)
	}
	out.Header.Set(ForwardedHeader, hex.EncodeToString(forwardMAC(tokenSum, req.URL.Path, body)))
	resp, err := c.Do(out)
	if err != nil {
		// A *url.Error names the URL: keep only what went wrong underneath.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, "", errors.Join(errOwnerUnreachable, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxOwnerAnswer))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

var defaultForwardClient = NewForwardClient()
