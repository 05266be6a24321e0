package receiver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// PathPrefix starts every webhook path.
const PathPrefix = "/hook/"

// MinTokenBytes is the shortest token accepted: the path and the Bearer check are only
// as strong as it.
const MinTokenBytes = 16

// DefaultMaxBody bounds a request body. An S3 notification from MinIO or Ceph holds one
// record; SNS and EventBridge messages are at most 256 KiB.
const DefaultMaxBody = 1 << 20

// WebhookPath is the path of a source's receiver, as Flux derives a Receiver's:
// /hook/ + hex(sha256(token + name + namespace)). It reveals nothing of the token and
// changes when the token does.
func WebhookPath(token, name, namespace string) string {
	sum := sha256.Sum256([]byte(token + name + namespace))
	return PathPrefix + hex.EncodeToString(sum[:])
}

// Target is a registered source.
type Target struct {
	// Source is "namespace/name".
	Source string
	Bucket string
	Prefix string
	// Paused refuses events with 403 (spec.disabled).
	Paused bool
}

// Wants reports whether an event's object belongs to the target: its bucket, under its
// prefix, and not a folder marker.
func (t Target) Wants(o Object) bool {
	return o.Bucket == t.Bucket && strings.HasPrefix(o.Key, t.Prefix) && !strings.HasSuffix(o.Key, "/")
}

type entry struct {
	Target
	path     string
	tokenSum [sha256.Size]byte
}

// Registry maps webhook paths to sources. The controller keeps it current from each
// reconcile, so a request never costs an API server call.
type Registry struct {
	mu       sync.RWMutex
	byPath   map[string]*entry
	bySource map[string]*entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byPath: map[string]*entry{}, bySource: map[string]*entry{}}
}

// Set registers (or updates) a source with its token and returns its webhook path; a
// previous path of the source stops answering.
func (r *Registry) Set(t Target, namespace, name, token string) string {
	e := &entry{Target: t, path: WebhookPath(token, name, namespace), tokenSum: sha256.Sum256([]byte(token))}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.bySource[t.Source]; old != nil {
		delete(r.byPath, old.path)
	}
	r.byPath[e.path] = e
	r.bySource[t.Source] = e
	return e.path
}

// Remove unregisters a source.
func (r *Registry) Remove(source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.bySource[source]; old != nil {
		delete(r.byPath, old.path)
		delete(r.bySource, source)
	}
}

// Path is the registered webhook path of a source ("" when none).
func (r *Registry) Path(source string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.bySource[source]; e != nil {
		return e.path
	}
	return ""
}

func (r *Registry) lookup(path string) (*entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byPath[path]
	return e, ok
}

// Results label RequestsTotal.
const (
	ResultAccepted         = "accepted"
	ResultIgnored          = "ignored"
	ResultConfirmation     = "subscription_confirmation"
	ResultUnauthorized     = "unauthorized"
	ResultForbidden        = "forbidden"
	ResultNotFound         = "not_found"
	ResultMalformed        = "malformed"
	ResultTooLarge         = "too_large"
	ResultMethodNotAllowed = "method_not_allowed"
	ResultUnavailable      = "unavailable"
	// ResultForwarded: handed to the replica serving the source, which counts its own
	// result; the sender got that replica's answer.
	ResultForwarded = "forwarded"
)

// Handler serves every webhook path.
type Handler struct {
	Registry *Registry
	// Enqueue hands a source the keys an authenticated event named (already filtered to
	// its bucket and prefix). It must not block on S3 or the store.
	Enqueue func(source string, keys []string) error
	// Mismatch is told when a registered path got a wrong token: the Secret may have
	// changed. The caller rate-limits what it does about it.
	Mismatch func(source string)
	// Confirm handles an SNS subscription confirmation from an authenticated request.
	Confirm func(ctx context.Context, source string, c Confirmation)
	// Requests counts requests by result (nil: not counted).
	Requests *prometheus.CounterVec
	// Ready reports whether this process acts on events (it leads); others answer 503 so
	// the sender retries (nil: always ready).
	Ready func() bool
	// Route says which replica serves a source (nil: this one, always).
	Route func(source string) Route
	// Forward hands requests to other replicas (nil: NewForwardClient's).
	Forward *http.Client
	// MaxBody bounds a body (0: DefaultMaxBody).
	MaxBody int64
	Log     logr.Logger
}

// NewRequestsCounter is the receiver's request counter, by result.
func NewRequestsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_webhook_requests_total",
		Help: "Requests to the S3Source webhook receiver, by result (accepted, ignored, unauthorized, forbidden, not_found, malformed, too_large, method_not_allowed, unavailable, forwarded, subscription_confirmation)."},
		[]string{"result"})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	result, code, msg := h.serve(req)
	if h.Requests != nil {
		h.Requests.WithLabelValues(result).Inc()
	}
	switch code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// serve decides one request. The order matters: nothing about a body is read before the
// token matched, so an unauthenticated caller learns only 404 or 401. A request handed
// on by another replica is authenticated by a MAC over its body: that body is read
// (bounded) first, and a wrong MAC too gets only 401.
func (h *Handler) serve(req *http.Request) (result string, code int, msg string) {
	if h.Ready != nil && !h.Ready() {
		return ResultUnavailable, http.StatusServiceUnavailable, "this replica is not ready to act on events; retry"
	}
	e, ok := h.Registry.lookup(req.URL.Path)
	if !ok {
		return ResultNotFound, http.StatusNotFound, "no receiver at this path"
	}
	if req.Method != http.MethodPost {
		// MinIO checks that a webhook target is up with a HEAD; any answer will do.
		return ResultMethodNotAllowed, http.StatusMethodNotAllowed, "use POST"
	}
	// A request handed on by another replica carries a MAC of its path and body instead
	// of the token (see forwardMAC); it is checked once the body is read.
	mac := req.Header.Get(ForwardedHeader)
	forwarded := mac != ""
	if !forwarded {
		token, ok := credential(req)
		if !ok {
			return ResultUnauthorized, http.StatusUnauthorized, "an Authorization: Bearer <token> header is required"
		}
		// Hashing first makes the comparison constant-time whatever the token's length.
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], e.tokenSum[:]) != 1 {
			if h.Mismatch != nil {
				h.Mismatch(e.Source)
			}
			return ResultUnauthorized, http.StatusUnauthorized, "the token does not match this receiver's"
		}
	}
	if e.Paused && !forwarded {
		return ResultForbidden, http.StatusForbidden, "the source is disabled (spec.disabled)"
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if req.ContentLength > limit {
		return ResultTooLarge, http.StatusRequestEntityTooLarge, "the body is larger than the receiver accepts"
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return ResultTooLarge, http.StatusRequestEntityTooLarge, "the body is larger than the receiver accepts"
	case err != nil:
		return ResultMalformed, http.StatusBadRequest, "reading the body failed"
	}
	if forwarded {
		if !validMAC(mac, e.tokenSum, req.URL.Path, body) {
			return ResultUnauthorized, http.StatusUnauthorized, "the request was not handed on by a replica holding this receiver's token"
		}
		if e.Paused {
			return ResultForbidden, http.StatusForbidden, "the source is disabled (spec.disabled)"
		}
	}
	n, err := Parse(body)
	if err != nil {
		// The parse error names the field; it holds nothing of the token.
		return ResultMalformed, http.StatusBadRequest, err.Error()
	}
	if n.Confirmation != nil {
		if h.Confirm != nil {
			h.Confirm(req.Context(), e.Source, *n.Confirmation)
		}
		return ResultConfirmation, http.StatusOK, "subscription confirmation received"
	}
	var keys []string
	for _, o := range n.Objects {
		if e.Wants(o) {
			keys = append(keys, o.Key)
		}
	}
	if len(keys) == 0 {
		return ResultIgnored, http.StatusOK, "no object of this source's bucket and prefix was created"
	}
	route := Route{Local: true}
	if h.Route != nil {
		route = h.Route(e.Source)
	}
	switch Decide(route, forwarded) {
	case ActUnavailable:
		h.Log.V(1).Info("no replica to act on a webhook event", "source", e.Source, "owner", route.Owner, "handedOn", forwarded)
		return ResultUnavailable, http.StatusServiceUnavailable, "no replica serves this source right now (its shard is moving); retry"
	case ActForward:
		code, msg, err := h.forward(req.Context(), route.Owner, req, e.tokenSum, body)
		if err != nil {
			// Never the request or its headers: they hold the token.
			h.Log.Error(err, "handing a webhook event to the replica serving its source", "source", e.Source, "owner", route.Owner)
			return ResultUnavailable, http.StatusServiceUnavailable, "the replica serving this source did not answer; retry"
		}
		if code == http.StatusNotFound {
			// The path is valid here: the owner has not registered the source yet.
			return ResultUnavailable, http.StatusServiceUnavailable, "the replica serving this source does not know it yet; retry"
		}
		return ResultForwarded, code, msg
	}
	if err := h.Enqueue(e.Source, keys); err != nil {
		// The sender retries (MinIO keeps undelivered events in its queue directory).
		h.Log.Error(err, "queueing webhook event", "source", e.Source)
		return ResultUnavailable, http.StatusServiceUnavailable, "the event could not be queued; retry"
	}
	return ResultAccepted, http.StatusAccepted, "queued"
}

// credential returns the token of an "Authorization: Bearer <token>" header, or the
// password of Basic authentication: SNS HTTPS subscriptions can only send the latter
// (https://user:<token>@host/hook/...); the user name is ignored.
func credential(req *http.Request) (string, bool) {
	if _, password, ok := req.BasicAuth(); ok {
		return password, password != ""
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
