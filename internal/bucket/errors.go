package bucket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Reasons a bucket operation failed. They are stable API: the controller copies them into
// condition reasons, and alerting may match on them.
const (
	// ReasonAccessDenied: the principal is not allowed to list the prefix or read the object.
	ReasonAccessDenied = "AccessDenied"
	// ReasonNoSuchBucket: the bucket does not exist at this endpoint.
	ReasonNoSuchBucket = "NoSuchBucket"
	// ReasonWrongRegion: the bucket exists in another region than the configured one.
	ReasonWrongRegion = "WrongRegion"
	// ReasonInvalidCredentials: unknown key, wrong secret, expired token, Secret missing keys,
	// or no credentials in the default chain.
	ReasonInvalidCredentials = "InvalidCredentials"
	// ReasonEndpointUnreachable: DNS, connection refused or reset, TLS verification.
	ReasonEndpointUnreachable = "EndpointUnreachable"
	// ReasonThrottled: S3 kept answering 503 SlowDown (or another throttle) after all retries.
	ReasonThrottled = "Throttled"
	// ReasonObjectChanged: the object was replaced between List and Open (If-Match failed).
	ReasonObjectChanged = "ObjectChanged"
	// ReasonObjectNotFound: the object was deleted between List and Open.
	ReasonObjectNotFound = "ObjectNotFound"
	// ReasonTimeout: a request (or a stalled download) exceeded Config.Timeout.
	ReasonTimeout = "Timeout"
	// ReasonCanceled: the caller's context was canceled, e.g. the operator is shutting down.
	ReasonCanceled = "Canceled"
	// ReasonInvalidConfig: the Config itself is unusable (no bucket, bad endpoint or CA bundle).
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonS3Error: any other error answered by the service.
	ReasonS3Error = "S3Error"
	// ReasonInvalidResponse: the endpoint answered something that is not an S3 response,
	// e.g. a web page or an empty body to a listing.
	ReasonInvalidResponse = "InvalidResponse"
)

// Error is every failure of this package. Message is safe to show in status and logs: it
// says what failed and how to fix it, and never holds secrets or URL query strings. Err is
// the cause, kept for errors.Is/As.
type Error struct {
	Reason  string
	Message string
	Err     error
	// opaque: the message hides the cause (a custom endpoint under a policy), so whether
	// a retry may help must not tell causes apart either.
	opaque bool
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first *Error in err's chain, or "" if there is none.
func ReasonOf(err error) string {
	var be *Error
	if errors.As(err, &be) {
		return be.Reason
	}
	return ""
}

// IsTransient reports whether retrying later, unchanged, may succeed. False means only a
// change of configuration, Secret or bucket policy can help (the source is stalled).
func IsTransient(err error) bool {
	var be *Error
	if !errors.As(err, &be) {
		return false
	}
	switch be.Reason {
	case ReasonThrottled, ReasonTimeout, ReasonCanceled, ReasonObjectChanged, ReasonObjectNotFound, ReasonS3Error:
		return true
	case ReasonEndpointUnreachable:
		// A certificate the CA bundle does not trust will not start verifying on its own.
		return be.opaque || !isTLSVerification(be.Err)
	}
	return false
}

// MissingSecretKeys is the error for a credentials Secret that lacks required keys, so the
// controller reports it with the same reason as a bad key.
func MissingSecretKeys(secret string, keys ...string) *Error {
	return &Error{
		Reason:  ReasonInvalidCredentials,
		Message: fmt.Sprintf("credentials Secret %s is missing key(s) %s: add them, or remove the Secret reference to use workload identity", secret, strings.Join(keys, ", ")),
	}
}

// operation is what was being done when an error happened, for the message.
type operation struct {
	name     string // "listing" or "reading"
	bucket   string
	path     string // prefix or key
	endpoint string
	region   string
	timeout  time.Duration
	ifMatch  string
	role     string
	// webIdentity names the identity whose token assumes role ("" for AssumeRole).
	webIdentity string
	secrets     []string
	// opaque: a custom endpoint under a policy. Its answers are not ours to show a tenant:
	// messages carry at most an S3 error code and fixed text, and network failures read
	// alike (refused, unreachable, timed out and TLS-failed targets are one answer), so
	// status is no port scanner.
	opaque bool
}

func (op operation) target() string {
	return fmt.Sprintf("%s s3://%s/%s", op.name, op.bucket, op.path)
}

// credentialsError marks a failure to obtain credentials, as opposed to a request that was
// signed and then refused.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "obtaining credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// errStalled is the cancel cause when a download makes no progress for Config.Timeout.
var errStalled = errors.New("no progress within the timeout")

// classify turns any error from the SDK, the network or a context into a *Error. parent is
// the caller's context, to tell its cancellation from our own per-call timeout.
func classify(parent context.Context, op operation, err error) error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	e := &Error{Err: &sanitizedError{msg: sanitize(err.Error(), op.secrets...), cause: err}}
	e.Reason, e.Message = reasonAndMessage(parent, op, err)
	e.Message = sanitize(e.Message, op.secrets...)
	e.opaque = op.opaque && e.Reason == ReasonEndpointUnreachable
	return e
}

func reasonAndMessage(parent context.Context, op operation, err error) (string, string) {
	detail := func() string { return sanitize(err.Error(), op.secrets...) }
	if isNotAllowed(err) {
		// First: a refused address is "not allowed" whatever else failed with it.
		return ReasonEndpointNotAllowed, EndpointNotAllowedMessage
	}
	if perr := parent.Err(); perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) {
			return ReasonTimeout, fmt.Sprintf("%s ran past the caller's deadline", op.target())
		}
		return ReasonCanceled, fmt.Sprintf("%s was canceled (the operator is stopping or the run was stopped)", op.target())
	}
	// A custom endpoint's silence reads like its refusal: a filtered port and a closed one
	// must not tell a tenant apart what a port scan would.
	if op.opaque && (errors.Is(err, errStalled) || errors.Is(err, context.DeadlineExceeded)) {
		return ReasonEndpointUnreachable, unreachable(op)
	}
	if errors.Is(err, errStalled) {
		return ReasonTimeout, fmt.Sprintf("%s made no progress for %s: check the network path to the endpoint; the next run retries", op.target(), op.timeout)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout, fmt.Sprintf("%s did not complete within %s: check the network path to the endpoint; the next run retries", op.target(), op.timeout)
	}

	var ce *credentialsError
	if errors.As(err, &ce) {
		return credentialsReason(op, ce.err)
	}

	var ae smithy.APIError
	if errors.As(err, &ae) {
		if reason, msg, ok := apiReason(op, ae, err); ok {
			return reason, msg
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if reason, msg, ok := statusReason(op, re, err); ok {
			return reason, msg
		}
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) && (re == nil || re.HTTPStatusCode()/100 == 2) {
		// A 2xx whose body does not parse: the endpoint is not an S3 service. (An error
		// status with an unparsable body falls through to the HTTP case.)
		return ReasonInvalidResponse, invalidResponse(op)
	}
	// Before the generic HTTP case: a request that never got an answer has status 0.
	if reason, msg, ok := networkReason(op, err); ok {
		return reason, msg
	}
	if op.opaque && (re == nil || re.HTTPStatusCode() == 0) {
		// No answer at all (e.g. "server gave HTTP response to HTTPS client"): unreachable,
		// like every other failure to talk to a custom endpoint.
		return ReasonEndpointUnreachable, unreachable(op)
	}
	if op.opaque {
		code := "no S3 error code"
		if ae != nil && s3ErrorCode.MatchString(ae.ErrorCode()) {
			code = "error code " + ae.ErrorCode()
		}
		return ReasonS3Error, fmt.Sprintf("%s failed: the endpoint answered with %s; the next run retries", op.target(), code)
	}
	if re != nil {
		return ReasonS3Error, fmt.Sprintf("%s failed with HTTP %d: %s", op.target(), re.HTTPStatusCode(), detail())
	}
	return ReasonS3Error, fmt.Sprintf("%s failed: %s", op.target(), detail())
}

// s3ErrorCode is what an S3 error code looks like (AccessDenied, XAmzContentSHA256Mismatch);
// anything else a custom endpoint puts in <Code> is not shown.
var s3ErrorCode = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]{0,63}$`)

func invalidResponse(op operation) string {
	return fmt.Sprintf("%s: the endpoint's answer is not an S3 response (a web page, an empty body or another API?): check that the endpoint URL points at an S3-compatible service, and whether it needs path-style addressing", op.target())
}

func apiReason(op operation, ae smithy.APIError, err error) (string, string, bool) {
	code := ae.ErrorCode()
	server := sanitize(ae.ErrorMessage(), op.secrets...)
	if op.opaque {
		server = "" // a custom endpoint's own words never reach status
	}
	if _, ok := retry.DefaultThrottleErrorCodes[code]; ok {
		return ReasonThrottled, throttledMessage(op, code, err), true
	}
	switch code {
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return ReasonAccessDenied, accessDenied(op, server), true
	case "NoSuchBucket":
		return ReasonNoSuchBucket, noSuchBucket(op), true
	case "NoSuchKey":
		return ReasonObjectNotFound, objectNotFound(op), true
	case "PreconditionFailed":
		return ReasonObjectChanged, objectChanged(op), true
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return ReasonWrongRegion, wrongRegion(op, err), true
	case "InvalidAccessKeyId", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired",
		"InvalidToken", "InvalidSecurity", "MissingSecurityHeader":
		return invalidCredentials(code)
	case "ServiceUnavailable":
		return ReasonThrottled, throttledMessage(op, code, err), true
	}
	return "", "", false
}

func throttledMessage(op operation, code string, err error) string {
	attempts := "all"
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		attempts = fmt.Sprint(me.Attempt)
	}
	return fmt.Sprintf("%s was throttled by the service (%s) and %s attempts with backoff did not get through: the next run retries; if it persists, lower the operator's concurrency or ask for a higher request rate", op.target(), code, attempts)
}

func statusReason(op operation, re *awshttp.ResponseError, err error) (string, string, bool) {
	switch re.HTTPStatusCode() {
	case http.StatusForbidden:
		return ReasonAccessDenied, accessDenied(op, ""), true
	case http.StatusNotFound:
		if op.name == opReading {
			return ReasonObjectNotFound, objectNotFound(op), true
		}
		return ReasonNoSuchBucket, noSuchBucket(op), true
	case http.StatusPreconditionFailed:
		return ReasonObjectChanged, objectChanged(op), true
	case http.StatusMovedPermanently:
		return ReasonWrongRegion, wrongRegion(op, err), true
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return ReasonThrottled, throttledMessage(op, fmt.Sprintf("HTTP %d", re.HTTPStatusCode()), err), true
	}
	return "", "", false
}

const (
	opListing = "listing"
	opReading = "reading"
)

func accessDenied(op operation, server string) string {
	if server != "" {
		server = " (" + server + ")"
	}
	principal := "the operator's principal"
	if op.webIdentity != "" {
		principal = "the role " + op.role + " (assumed with a token of " + op.webIdentity + ")"
	}
	if op.name == opReading {
		return fmt.Sprintf("%s was denied%s: check that the bucket policy grants s3:GetObject on arn:aws:s3:::%s/<prefix>* to %s, with the prefix exactly as configured including the trailing slash (and kms:Decrypt if the bucket uses SSE-KMS)", op.target(), server, op.bucket, principal)
	}
	return fmt.Sprintf("%s was denied%s: check the bucket policy principal is %s and that the prefix in the policy's s3:prefix condition matches the configured prefix exactly, including the trailing slash (e.g. %q)", op.target(), server, principal, op.path+"*")
}

func noSuchBucket(op operation) string {
	return fmt.Sprintf("bucket %q does not exist at %s: check the bucket name, region and endpoint", op.bucket, op.where())
}

func (op operation) where() string {
	if op.endpoint != "" {
		return fmt.Sprintf("%s (region %s)", op.endpoint, op.region)
	}
	return "AWS region " + op.region
}

func objectNotFound(op operation) string {
	return fmt.Sprintf("%s: the object was deleted after it was listed; the next discovery will not see it", op.target())
}

func objectChanged(op operation) string {
	return fmt.Sprintf("%s: the object was replaced while being read (its ETag is no longer %s); the next discovery picks up the new version", op.target(), op.ifMatch)
}

func wrongRegion(op operation, err error) string {
	actual := "the bucket's region"
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && !op.opaque {
		if r := re.Response.Header.Get("x-amz-bucket-region"); r != "" {
			actual = r
		}
	}
	return fmt.Sprintf("bucket %q is not in region %s: set the region to %s", op.bucket, op.region, actual)
}

func invalidCredentials(code string) (string, string, bool) {
	var msg string
	switch code {
	case "InvalidAccessKeyId", "InvalidClientTokenId":
		msg = "the access key ID is not known to the service: check the access key ID in the credentials Secret"
	case "SignatureDoesNotMatch":
		msg = "the request signature does not match: check the secret access key in the credentials Secret belongs to its access key ID"
	case "ExpiredToken", "TokenRefreshRequired", "InvalidToken":
		msg = "the session token is expired or invalid: renew the temporary credentials in the Secret, or use workload identity or assume-role so they refresh automatically"
	default:
		msg = "the request's credentials were rejected (" + code + "): check the credentials Secret"
	}
	return ReasonInvalidCredentials, msg, true
}

func credentialsReason(op operation, err error) (string, string) {
	var te *tokenError
	if errors.As(err, &te) {
		return ReasonInvalidCredentials, fmt.Sprintf("could not obtain a token for %s (%s): check that it exists", op.webIdentity, sanitize(te.err.Error(), op.secrets...))
	}
	var ae smithy.APIError
	if op.webIdentity != "" && errors.As(err, &ae) {
		return webIdentityReason(op, ae)
	}
	if errors.As(err, &ae) {
		if op.role != "" && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "AccessDeniedException") {
			return ReasonAccessDenied, fmt.Sprintf("STS AssumeRole of %s was denied: check the role's trust policy names the operator's principal and that the external ID matches", op.role)
		}
		if reason, msg, ok := invalidCredentials(ae.ErrorCode()); ok && ae.ErrorCode() != "AccessDenied" {
			if op.role != "" {
				msg = fmt.Sprintf("STS AssumeRole of %s failed: %s", op.role, msg)
			}
			return reason, msg
		}
	}
	if reason, msg, ok := networkReason(op, err); ok && reason == ReasonEndpointUnreachable {
		return reason, msg
	}
	if op.opaque {
		return ReasonInvalidCredentials, "could not obtain credentials: check the credentials Secret (and the role, if assumeRole is set)"
	}
	return ReasonInvalidCredentials, fmt.Sprintf("could not obtain credentials (%s): reference a credentials Secret with the access key and secret key, or configure workload identity (IRSA or EKS Pod Identity) for the operator's service account", sanitize(err.Error(), op.secrets...))
}

// webIdentityReason explains a refused AssumeRoleWithWebIdentity with the service's error
// code only: the fix is in the role's trust policy, never in the request.
func webIdentityReason(op operation, ae smithy.APIError) (string, string) {
	code := ae.ErrorCode()
	switch code {
	case "AccessDenied", "AccessDeniedException", "IDPRejectedClaim", "InvalidIdentityToken", "ExpiredTokenException":
		return ReasonAccessDenied, fmt.Sprintf("STS AssumeRoleWithWebIdentity of %s with a token of %s was refused (%s): check that the role's trust policy allows this identity (sub system:serviceaccount:<namespace>:<name>, audience sts.amazonaws.com) and trusts the cluster's OIDC issuer", op.role, op.webIdentity, code)
	}
	if _, ok := retry.DefaultThrottleErrorCodes[code]; ok {
		return ReasonThrottled, fmt.Sprintf("STS AssumeRoleWithWebIdentity of %s was throttled (%s): the next run retries", op.role, code)
	}
	return ReasonInvalidCredentials, fmt.Sprintf("STS AssumeRoleWithWebIdentity of %s with a token of %s failed (%s): check the role ARN in the ServiceAccount's annotation and the role's trust policy", op.role, op.webIdentity, code)
}

func networkReason(op operation, err error) (string, string, bool) {
	var (
		recordErr tls.RecordHeaderError
		dnsErr    *net.DNSError
		opErr     *net.OpError
	)
	host := op.endpoint
	if host == "" {
		host = "the S3 endpoint"
	}
	if op.opaque {
		if isTLSVerification(err) || errors.As(err, &recordErr) || errors.As(err, &dnsErr) || errors.As(err, &opErr) ||
			isNetTimeout(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
			return ReasonEndpointUnreachable, unreachable(op), true
		}
		return "", "", false
	}
	switch {
	case isTLSVerification(err):
		return ReasonEndpointUnreachable, fmt.Sprintf("TLS verification of %s failed (%s): add the CA that signed the endpoint's certificate to the CA bundle, or fix the certificate", host, tlsDetail(err)), true
	case errors.As(err, &recordErr):
		return ReasonEndpointUnreachable, fmt.Sprintf("%s did not answer TLS (is it plain http?): check the endpoint URL's scheme and port", host), true
	case errors.As(err, &dnsErr):
		return ReasonEndpointUnreachable, fmt.Sprintf("cannot resolve %s (%s): check the endpoint host name and cluster DNS", host, dnsErr.Err), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonEndpointUnreachable, fmt.Sprintf("connection to %s was refused: check the endpoint URL and port and that the service is running", host), true
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ReasonEndpointUnreachable, fmt.Sprintf("cannot connect to %s (%s): check the endpoint URL and that network policy allows egress to it", host, sanitize(opErr.Err.Error(), op.secrets...)), true
	case isNetTimeout(err):
		return ReasonTimeout, fmt.Sprintf("%s timed out talking to %s: check the network path to the endpoint; the next run retries", op.target(), host), true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed), errors.As(err, &opErr):
		return ReasonEndpointUnreachable, fmt.Sprintf("the connection to %s broke while %s (%s): the next run retries", host, op.target(), sanitize(err.Error(), op.secrets...)), true
	}
	return "", "", false
}

// unreachable is the one message of a custom endpoint that could not be talked to, under a
// policy, whatever the cause.
func unreachable(op operation) string {
	return fmt.Sprintf("%s could not reach the endpoint (name, connection or TLS): check the endpoint URL and port, that the service runs, the CA bundle, and that network policy allows egress to it; the next run retries", op.target())
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLSVerification(err error) bool {
	var (
		unknownCA   x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
	)
	return errors.As(err, &verifyErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidCert)
}

func tlsDetail(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "certificate signed by an unknown authority"
	case errors.As(err, &hostErr):
		return hostErr.Error()
	}
	return "certificate not trusted"
}

var (
	// A URL's query can hold a presigned signature, credential scope or session token.
	urlQuery = regexp.MustCompile(`(?i)(\b[a-z][a-z0-9+.-]*://[^\s"'?#]*)\?[^\s"'#]*`)
	// Signing material outside a URL, e.g. an Authorization header echoed in an error.
	// A JWT (a ServiceAccount token): three base64url parts, the first a JSON header.
	jwt          = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	signingParam = regexp.MustCompile(`(?i)((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|credential|aws_secret_access_key|secretaccesskey|sessiontoken)\s*[=:]\s*)[^\s&,"']+`)
)

// sanitize strips URL query strings, signing parameters and the given secret values.
func sanitize(s string, secrets ...string) string {
	s = urlQuery.ReplaceAllString(s, "$1?REDACTED")
	s = signingParam.ReplaceAllString(s, "${1}REDACTED")
	s = jwt.ReplaceAllString(s, "REDACTED")
	for _, secret := range secrets {
		// Very short values would redact innocent text and cannot be real keys.
		if len(secret) >= 8 {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return s
}

// sanitizedError prints as its sanitized text but keeps the cause for errors.Is/As, so
// logging Error.Err is as safe as logging the Error.
type sanitizedError struct {
	msg   string
	cause error
}

func (e *sanitizedError) Error() string { return e.msg }
func (e *sanitizedError) Unwrap() error { return e.cause }
