package bucket

import (
	"maps"
	"net/http"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
)

// S3 operation names counted by CountingTransport.
const (
	OpListObjectsV2 = "ListObjectsV2"
	OpGetObject     = "GetObject"
	OpHeadObject    = "HeadObject"
	OpPutObject     = "PutObject"
	OpDeleteObject  = "DeleteObject"
	OpOther         = "Other"
)

// CountingTransport counts the HTTP requests that pass through it by S3 operation, retries
// included, so tests can assert e.g. "ceil(N/1000) ListObjectsV2 and zero GetObject".
// Use it as Config.WrapTransport = ct.Wrap. Safe for concurrent use.
type CountingTransport struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap returns next with counting in front of it; every wrapped transport adds to ct.
func (ct *CountingTransport) Wrap(next http.RoundTripper) http.RoundTripper {
	return countingRoundTripper{ct: ct, next: next}
}

type countingRoundTripper struct {
	ct   *CountingTransport
	next http.RoundTripper
}

func (rt countingRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.ct.add(Operation(req))
	return rt.next.RoundTrip(req)
}

func (ct *CountingTransport) add(op string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.counts == nil {
		ct.counts = map[string]int{}
	}
	ct.counts[op]++
}

// Count returns the number of requests seen for op (one of the Op constants).
func (ct *CountingTransport) Count(op string) int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.counts[op]
}

// Counts returns a copy of all counts by operation.
func (ct *CountingTransport) Counts() map[string]int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return maps.Clone(ct.counts)
}

// Total returns the number of requests of any operation.
func (ct *CountingTransport) Total() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := 0
	for _, c := range ct.counts {
		n += c
	}
	return n
}

// Reset sets every count to zero.
func (ct *CountingTransport) Reset() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	clear(ct.counts)
}

// Operation names the S3 operation of req. Requests sent by the SDK carry their operation
// name in the context; for others it is read from the request, assuming path-style URLs
// (/bucket/key) as MinIO and test servers use.
func Operation(req *http.Request) string {
	if name := awsmiddleware.GetOperationName(req.Context()); name != "" {
		switch name {
		case OpListObjectsV2, OpGetObject, OpHeadObject, OpPutObject, OpDeleteObject:
			return name
		}
		return OpOther
	}
	q := req.URL.Query()
	hasKey := strings.Contains(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case req.Method == http.MethodGet && q.Get("list-type") == "2":
		return OpListObjectsV2
	case req.Method == http.MethodGet && hasKey:
		return OpGetObject
	case req.Method == http.MethodHead && hasKey:
		return OpHeadObject
	case req.Method == http.MethodPut && hasKey:
		return OpPutObject
	case req.Method == http.MethodDelete && hasKey:
		return OpDeleteObject
	}
	return OpOther
}
