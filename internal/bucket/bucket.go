// Package bucket is the operator's narrow view of an S3 bucket: list a prefix page by page
// and open one object as a stream. It knows nothing of Kubernetes; the controller turns an
// S3Source and its Secret into a Config.
//
// Every failure is a *Error whose Reason names what went wrong and whose Message names the
// fix. Messages never contain credentials, presigned URLs or URL query strings.
package bucket

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Object is one S3 object as listed or opened.
type Object struct {
	Key string
	// ETag without the surrounding quotes S3 puts on the wire. With Size it decides whether
	// an object seen before was updated.
	ETag         string
	Size         int64
	LastModified time.Time
}

// Client is everything the ingestion engine needs from a bucket. It only ever reads:
// ListObjectsV2 (s3:ListBucket) and GetObject (s3:GetObject), the seed guide's read-only
// principal. Implementations are safe for concurrent use.
type Client interface {
	// List calls fn with each page of objects whose key starts with prefix, in key order,
	// one ListObjectsV2 request (up to PageSize objects) per page, so the whole listing is
	// never in memory. fn is not called for an empty page, so a prefix that matches
	// nothing makes no call (see NoObjectsMessage). The page slice is fn's to keep. An error from fn stops the listing
	// and is returned as is; every other failure is a *Error. With StartAfter the listing
	// begins after a key.
	List(ctx context.Context, prefix string, fn func(page []Object) error, opts ...ListOption) error

	// Open starts a GetObject of key and returns its body as a stream with the object's
	// ETag, size and last-modified time. The caller must Close the body. With IfMatch the
	// read fails with ReasonObjectChanged if the object is no longer the listed version,
	// so a concurrently replaced object is never read under the old identity. Errors from
	// Open and from reading the body are *Error.
	Open(ctx context.Context, key string, opts ...OpenOption) (io.ReadCloser, Object, error)
}

// PageSize is the number of keys requested per ListObjectsV2 call (S3's maximum).
const PageSize = 1000

// ListOption adjusts one List call.
type ListOption func(*listOptions)

type listOptions struct {
	startAfter string
}

// StartAfter makes List return only keys after key in S3's key order (UTF-8 byte
// order), with ListObjectsV2's StartAfter: an incremental listing of a prefix whose keys
// sort by time. An empty key lists from the start.
func StartAfter(key string) ListOption {
	return func(o *listOptions) { o.startAfter = key }
}

// OpenOption adjusts one Open call.
type OpenOption func(*openOptions)

type openOptions struct {
	ifMatch string
}

// IfMatch makes Open fail with ReasonObjectChanged unless the object's ETag is etag (as
// returned by List, with or without quotes). An empty etag adds no condition.
func IfMatch(etag string) OpenOption {
	return func(o *openOptions) { o.ifMatch = etag }
}

// Config says how to reach one bucket.
type Config struct {
	// Bucket name, required.
	Bucket string
	// Region for signing; defaults to us-east-1 when an Endpoint is set, otherwise to the
	// region found by the default AWS configuration (AWS_REGION).
	Region string
	// Endpoint of an S3-compatible service, e.g. https://minio.example:9000. Empty means AWS.
	Endpoint string
	// ForcePathStyle addresses the bucket as https://endpoint/bucket instead of
	// https://bucket.endpoint; most S3-compatible services need it.
	ForcePathStyle bool
	// CABundle is PEM; when set it replaces the system roots for TLS to the endpoint.
	CABundle []byte
	// Credentials nil means the default AWS chain: environment, IRSA web identity, EKS Pod
	// Identity, shared config, instance metadata (workload identity needs no Secret).
	Credentials *StaticCredentials
	// AssumeRole, when set, exchanges the credentials above for the role's via STS.
	AssumeRole *AssumeRole
	// WebIdentity, when set, is the only source of credentials: a token from its Token
	// function is exchanged with STS AssumeRoleWithWebIdentity for its role. Neither
	// Credentials, AssumeRole nor the default chain is used with it.
	WebIdentity *WebIdentity
	// Timeout bounds each request: a whole ListObjectsV2 page (with its retries), and for
	// Open the time to the response and then any stall between reads of the body, so a slow
	// but moving download of a large object is not cut off. Default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts per request, first try included, for throttling (503 SlowDown), 5xx and
	// connection errors, with the SDK's standard retryer: exponential backoff with full
	// jitter capped at MaxBackoff. Defaults DefaultMaxAttempts and DefaultMaxBackoff.
	MaxAttempts int
	MaxBackoff  time.Duration
	// Policy, when set, is the platform admin's endpoint policy (see EndpointPolicy): New
	// refuses endpoints it does not allow, every connection is checked at dial time, a custom
	// endpoint is reached without the environment's HTTP(S)_PROXY (the dial guard must see
	// the real target), and what a custom endpoint answers reaches messages only as an S3
	// error code and fixed text. The operator always sets one; nil (the admin's CLI, tests)
	// means no policy.
	Policy *EndpointPolicy
	// WrapTransport, when set, wraps the HTTP transport (after TLS is configured), e.g. with
	// a CountingTransport in tests.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Transports, when set, shares HTTP transports (and their idle connections) with the
	// other clients built from the same pool for the same endpoint, credentials and trust.
	// Nil gives the client a transport of its own.
	Transports *TransportPool
}

// Defaults for Config. Five attempts with backoff capped at 20 s ride out a burst of
// SlowDown (S3 asks clients to back off for seconds) without holding a run for minutes.
const (
	DefaultTimeout     = time.Minute
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second
)

// StaticCredentials are an access key, e.g. from a Secret. SessionToken is for temporary
// credentials. They format as redacted so a %v of a Config never leaks them.
type StaticCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// String redacts everything but the access key ID, which is not secret and helps debugging.
func (c StaticCredentials) String() string {
	return fmt.Sprintf("{AccessKeyID:%s SecretAccessKey:REDACTED}", c.AccessKeyID)
}

// GoString keeps %#v as safe as %v.
func (c StaticCredentials) GoString() string { return c.String() }

// LogValue keeps slog as safe as %v.
func (c StaticCredentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// AssumeRole describes an STS AssumeRole on top of the base credentials.
type AssumeRole struct {
	RoleARN string
	// ExternalID, if the role's trust policy requires one (confused-deputy protection).
	ExternalID string
	// SessionName appears in CloudTrail; defaults to "data-import-operator".
	SessionName string
	// STSEndpoint overrides the STS endpoint (e.g. an S3-compatible service's own STS).
	// Empty means the regional AWS STS endpoint.
	STSEndpoint string
}

// WebIdentity is an STS AssumeRoleWithWebIdentity with tokens from a function, e.g. a
// Kubernetes ServiceAccount token requested with the TokenRequest API. The package knows
// nothing of where the token comes from.
type WebIdentity struct {
	RoleARN string
	// SessionName appears in CloudTrail; defaults to "data-import-operator".
	SessionName string
	// Token returns a fresh identity token (a JWT). It is called whenever STS needs one:
	// on the first request and each time the temporary credentials expire.
	Token func(ctx context.Context) (string, error)
	// STSEndpoint overrides the STS endpoint (e.g. an S3-compatible service's own STS).
	// Empty means the regional AWS STS endpoint.
	STSEndpoint string
	// Describe names the identity in error messages, e.g. "ServiceAccount ns/name".
	Describe string
}

// NoObjectsMessage is the status message for a prefix that matched nothing.
func NoObjectsMessage(bucket, prefix string) string {
	return fmt.Sprintf("no objects found under s3://%s/%s — check the prefix and trailing slash", bucket, prefix)
}
