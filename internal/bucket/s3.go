package bucket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

// S3 is the Client on aws-sdk-go-v2.
type S3 struct {
	client *s3.Client
	op     operation // the parts of every error message that do not change per call
}

var _ Client = (*S3)(nil)

// New builds a client for cfg. It makes no request: a wrong bucket or bad credentials show
// up on the first List or Open. Only an unusable Config fails here (ReasonInvalidConfig).
func New(ctx context.Context, cfg Config) (*S3, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	var exempt []netip.AddrPort
	if cfg.Policy != nil {
		var err error
		if exempt, err = cfg.Policy.checkEndpoints(cfg); err != nil {
			return nil, err
		}
	}
	httpClient, err := newHTTPClient(cfg, exempt)
	if err != nil {
		return nil, err
	}
	loadOpts := []func(*config.LoadOptions) error{
		// The SDK must never log: a debug log of a request would print signed headers.
		config.WithLogger(logging.Nop{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
				// An untrusted certificate stays untrusted, and a refused address stays
				// refused (retrying would only tell the time apart): fail at once.
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if isTLSVerification(err) || isNotAllowed(err) {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, o.Retryables...)
			})
		}),
	}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	switch {
	case cfg.WebIdentity != nil:
		// The web identity is the only identity: the default chain (the operator's own
		// identity) must never be loaded, not even to sign the STS call, which needs none.
		loadOpts = append(loadOpts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case cfg.Credentials != nil:
		c := *cfg.Credentials
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: err,
			Message: sanitize(fmt.Sprintf("loading the AWS configuration failed: %v", err))}
	}
	if awsCfg.Region == "" {
		return nil, &Error{Reason: ReasonInvalidConfig,
			Message: "no region configured and none found in the environment (AWS_REGION): set the region"}
	}
	// Set after loading: the loader insists on its own client type to apply AWS_CA_BUNDLE,
	// which newHTTPClient honours itself. Credential providers built by the loader (IMDS,
	// web identity) keep the loader's client, which is right for them.
	awsCfg.HTTPClient = httpClient
	if cfg.AssumeRole != nil {
		ar := *cfg.AssumeRole
		stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
			if ar.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(ar.STSEndpoint)
			}
		})
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, ar.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = ar.SessionName
				if ar.ExternalID != "" {
					o.ExternalID = aws.String(ar.ExternalID)
				}
			}))
	}
	if wi := cfg.WebIdentity; wi != nil {
		stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
			if wi.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(wi.STSEndpoint)
			}
		})
		// The cache refreshes the credentials before they expire; each refresh asks
		// Token for a fresh token, so a token never outlives its own expiry.
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsClient, wi.RoleARN,
			tokenRetriever{fetch: wi.Token, timeout: cfg.Timeout},
			func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = wi.SessionName }))
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = taggedCredentials{awsCfg.Credentials}
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// Under a policy a custom endpoint is addressed path-style: virtual-hosted style
		// would send requests to <bucket>.<host>, a host the tenant picks by naming the
		// bucket and the admin never allowed.
		o.UsePathStyle = cfg.ForcePathStyle || (cfg.Policy != nil && cfg.Endpoint != "")
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	op := operation{
		bucket:   cfg.Bucket,
		endpoint: cfg.Endpoint,
		region:   awsCfg.Region,
		timeout:  cfg.Timeout,
		opaque:   cfg.Policy != nil && customEndpoint(cfg),
	}
	if cfg.Credentials != nil {
		op.secrets = []string{cfg.Credentials.SecretAccessKey, cfg.Credentials.SessionToken}
	}
	if cfg.AssumeRole != nil {
		op.role = cfg.AssumeRole.RoleARN
	}
	if cfg.WebIdentity != nil {
		op.role, op.webIdentity = cfg.WebIdentity.RoleARN, cfg.WebIdentity.Describe
		if op.webIdentity == "" {
			op.webIdentity = "the web identity"
		}
	}
	return &S3{client: client, op: op}, nil
}

// tokenRetriever adapts a token function to the SDK's IdentityTokenRetriever, which has
// no context: each call gets its own, bounded by the request timeout.
type tokenRetriever struct {
	fetch   func(context.Context) (string, error)
	timeout time.Duration
}

func (t tokenRetriever) GetIdentityToken() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	tok, err := t.fetch(ctx)
	if err != nil {
		return nil, &tokenError{err: err}
	}
	return []byte(tok), nil
}

// tokenError marks a failure to obtain the identity token itself (before STS).
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "obtaining the identity token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func validate(cfg *Config) error {
	invalid := func(format string, args ...any) error {
		return &Error{Reason: ReasonInvalidConfig, Message: fmt.Sprintf(format, args...)}
	}
	if cfg.Bucket == "" {
		return invalid("no bucket name: set the bucket")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("endpoint %q is not an http(s) URL: use e.g. https://minio.example:9000", urlQuery.ReplaceAllString(cfg.Endpoint, "$1?REDACTED"))
		}
		if u.RawQuery != "" || u.User != nil {
			return invalid("endpoint must not carry a query or user info: put credentials in the credentials Secret")
		}
		if cfg.Region == "" {
			cfg.Region = "us-east-1" // S3-compatible services accept any region for signing
		}
	}
	if c := cfg.Credentials; c != nil {
		var missing []string
		if c.AccessKeyID == "" {
			missing = append(missing, "access key ID")
		}
		if c.SecretAccessKey == "" {
			missing = append(missing, "secret access key")
		}
		if len(missing) > 0 {
			return &Error{Reason: ReasonInvalidCredentials,
				Message: "static credentials lack the " + strings.Join(missing, " and ") + ": check the credentials Secret"}
		}
	}
	if wi := cfg.WebIdentity; wi != nil {
		switch {
		case cfg.Credentials != nil || cfg.AssumeRole != nil:
			return invalid("a web identity cannot be combined with static credentials or assume-role")
		case wi.RoleARN == "":
			return invalid("web identity needs a role ARN")
		case wi.Token == nil:
			return invalid("web identity needs a token source")
		}
		if wi.SessionName == "" {
			wi2 := *wi
			wi2.SessionName = "data-import-operator"
			cfg.WebIdentity = &wi2
		}
	}
	if ar := cfg.AssumeRole; ar != nil {
		if ar.RoleARN == "" {
			return invalid("assume-role needs a role ARN")
		}
		if ar.SessionName == "" {
			ar2 := *ar
			ar2.SessionName = "data-import-operator"
			cfg.AssumeRole = &ar2
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	return nil
}

// customEndpoint reports whether cfg talks to anything but AWS's own endpoints.
func customEndpoint(cfg Config) bool { return len(cfg.customEndpoints()) > 0 }

// customEndpoints are the endpoints other than AWS's that cfg sends requests to: the S3
// endpoint and the STS endpoints of AssumeRole and WebIdentity. The policy checks each of
// them, and their answers are opaque.
func (cfg Config) customEndpoints() []string {
	var out []string
	candidates := []string{cfg.Endpoint}
	if cfg.AssumeRole != nil {
		candidates = append(candidates, cfg.AssumeRole.STSEndpoint)
	}
	if cfg.WebIdentity != nil {
		candidates = append(candidates, cfg.WebIdentity.STSEndpoint)
	}
	for _, e := range candidates {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// newHTTPClient is the standard transport trusting, for TLS, only the CA bundle if one is
// given, else the system roots plus the AWS_CA_BUNDLE file the AWS SDKs honour. With a
// policy, every dial is checked (exempt: the addresses of endpoints allowed by address),
// and custom endpoints are dialed directly: through HTTP(S)_PROXY the dial would be to the
// proxy, which would then reach any address on our behalf. AWS endpoints keep the
// environment's proxy; the proxy's address is then what the guard checks.
func newHTTPClient(cfg Config, exempt []netip.AddrPort) (*http.Client, error) {
	build := func() (*http.Transport, error) { return newTransport(cfg, exempt) }
	var tr *http.Transport
	var err error
	if cfg.Transports != nil {
		tr, err = cfg.Transports.get(transportKey(cfg, exempt), build)
	} else {
		tr, err = build()
	}
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = tr
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}
	c := &http.Client{Transport: rt}
	if cfg.Policy != nil {
		c.CheckRedirect = checkRedirect(customEndpoint(cfg))
	}
	return c, nil
}

// newTransport builds the transport newHTTPClient describes.
func newTransport(cfg Config, exempt []netip.AddrPort) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.Policy != nil {
		// The same timeouts as http.DefaultTransport's dialer.
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: cfg.Policy.control(exempt)}
		tr.DialContext = d.DialContext
		if customEndpoint(cfg) {
			tr.Proxy = nil
		}
	}
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	tr.IdleConnTimeout = TransportIdleTimeout
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case len(cfg.CABundle) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CABundle) {
			return nil, &Error{Reason: ReasonInvalidConfig,
				Message: "the CA bundle holds no PEM certificate: provide the endpoint's CA certificate(s) in PEM form"}
		}
		tr.TLSClientConfig.RootCAs = pool
	case os.Getenv("AWS_CA_BUNDLE") != "":
		pool, err := envCABundle(os.Getenv("AWS_CA_BUNDLE"))
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// checkRedirect keeps redirects from taking a request where the allow-list did not: the
// dial guard still checks the address, but a redirect to another allowed-range host would
// carry the signed headers (the session token included) there. A custom endpoint's redirect
// is handed to the SDK as its answer (an error); AWS may redirect within AWS only.
func checkRedirect(custom bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		host := strings.ToLower(req.URL.Hostname())
		aws := strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")
		if custom || !aws || req.URL.Scheme != "https" || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

func envCABundle(path string) (*x509.CertPool, error) {
	invalid := func(err error) error {
		return &Error{Reason: ReasonInvalidConfig, Err: err,
			Message: fmt.Sprintf("AWS_CA_BUNDLE %s is unusable (%v): point it at a PEM file or unset it", path, err)}
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid(err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots on this platform: the bundle alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, invalid(errors.New("no PEM certificate in it"))
	}
	return pool, nil
}

// taggedCredentials marks failures to get credentials so they classify as such, whatever
// provider (static, default chain, STS) produced them.
type taggedCredentials struct{ aws.CredentialsProvider }

func (t taggedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err: err}
	}
	return c, nil
}

// List implements Client with ListObjectsV2, PageSize keys per request.
func (c *S3) List(ctx context.Context, prefix string, fn func(page []Object) error, opts ...ListOption) error {
	var o listOptions
	for _, fn := range opts {
		fn(&o)
	}
	op := c.op
	op.name, op.path = opListing, prefix
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(c.op.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(PageSize),
	}
	if o.startAfter != "" {
		in.StartAfter = aws.String(o.startAfter)
	}
	p := s3.NewListObjectsV2Paginator(c.client, in)
	for p.HasMorePages() {
		out, err := c.nextPage(ctx, p)
		if err != nil {
			return classify(ctx, op, err)
		}
		if out.Name == nil {
			// Every ListBucketResult names its bucket. A 200 without it (an HTML page, JSON,
			// an empty body) came from something that is not S3 and must not read as "no
			// objects found".
			return &Error{Reason: ReasonInvalidResponse, Message: invalidResponse(op)}
		}
		page := make([]Object, 0, len(out.Contents))
		for _, o := range out.Contents {
			page = append(page, Object{
				Key:          aws.ToString(o.Key),
				ETag:         unquote(aws.ToString(o.ETag)),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
		if len(page) == 0 {
			continue // an empty prefix answers one empty page; fn never sees it
		}
		if err := fn(page); err != nil {
			return err
		}
	}
	return nil
}

func (c *S3) nextPage(ctx context.Context, p *s3.ListObjectsV2Paginator) (*s3.ListObjectsV2Output, error) {
	ctx, cancel := context.WithTimeout(ctx, c.op.timeout)
	defer cancel()
	return p.NextPage(ctx)
}

// Open implements Client with GetObject.
func (c *S3) Open(ctx context.Context, key string, opts ...OpenOption) (io.ReadCloser, Object, error) {
	var o openOptions
	for _, fn := range opts {
		fn(&o)
	}
	op := c.op
	op.name, op.path, op.ifMatch = opReading, key, unquote(o.ifMatch)
	in := &s3.GetObjectInput{Bucket: aws.String(c.op.bucket), Key: aws.String(key)}
	if op.ifMatch != "" {
		in.IfMatch = aws.String(`"` + op.ifMatch + `"`)
	}
	// One watchdog covers the request and then every stall of the body.
	reqCtx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{cancel: cancel, timeout: c.op.timeout}
	w.arm()
	out, err := c.client.GetObject(reqCtx, in)
	if err != nil {
		w.stop()
		return nil, Object{}, classify(ctx, op, withCause(reqCtx, err))
	}
	obj := Object{
		Key:          key,
		ETag:         unquote(aws.ToString(out.ETag)),
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
	}
	return &body{rc: out.Body, w: w, parent: ctx, reqCtx: reqCtx, op: op}, obj, nil
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// withCause adds the context's cancel cause (errStalled) to err, which the SDK reports as
// a bare context.Canceled.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() && !errors.Is(err, cause) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// watchdog cancels a download that makes no progress for timeout.
type watchdog struct {
	cancel  context.CancelCauseFunc
	timeout time.Duration
	mu      sync.Mutex
	timer   *time.Timer
}

func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, func() { w.cancel(errStalled) })
		return
	}
	w.timer.Reset(w.timeout)
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel(context.Canceled)
}

// body is an object's stream: each read that makes progress re-arms the watchdog, and read
// errors are classified like request errors.
type body struct {
	rc     io.ReadCloser
	w      *watchdog
	parent context.Context
	reqCtx context.Context
	op     operation
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.w.arm()
	}
	if err != nil && err != io.EOF {
		return n, classify(b.parent, b.op, withCause(b.reqCtx, err))
	}
	return n, err
}

func (b *body) Close() error {
	b.w.stop()
	return b.rc.Close()
}
