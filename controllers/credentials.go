package controllers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// Keys read from a credentials Secret and a CA Secret.
const (
	SecretAccessKeyID     = "AWS_ACCESS_KEY_ID"
	SecretSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	SecretSessionToken    = "AWS_SESSION_TOKEN"
	SecretCABundle        = "ca.crt"
)

// Identity defaults of the manager.
const (
	// DefaultOperatorIdentityNamespaceSelector is the default of
	// --operator-identity-namespace-selector: namespaces the admin labelled
	// dataimport.avon.ai/operator-identity=allowed may use the operator's own identity.
	DefaultOperatorIdentityNamespaceSelector = v1.OperatorIdentityLabel + "=allowed"
	// DefaultSTSAudience is the audience of ServiceAccount tokens exchanged with STS, the
	// one IRSA uses and AWS IAM OIDC providers are configured for.
	DefaultSTSAudience = "sts.amazonaws.com"
	// tokenExpiration is the lifetime asked of a ServiceAccount token: it is exchanged at
	// once, and a fresh one is requested each time STS needs one.
	tokenExpiration = time.Hour
	// ExternalIDPrefix starts every external ID the operator generates.
	ExternalIDPrefix = "dataimport-"
)

// IdentityOptions are the admin's knobs for cloud identities (manager flags).
type IdentityOptions struct {
	// OperatorIdentityNamespaces selects the namespaces whose sources may use the
	// operator's own identity (provider Default, with or without assumeRole). Nil means
	// DefaultOperatorIdentityNamespaceSelector.
	OperatorIdentityNamespaces labels.Selector
	// STSEndpoint overrides the STS endpoint for AssumeRole and AssumeRoleWithWebIdentity
	// (an S3-compatible service's STS). Empty means the regional AWS STS.
	STSEndpoint string
	// STSAudience is the audience of ServiceAccount tokens. Empty means DefaultSTSAudience.
	STSAudience string
	// ReferenceRecheck is how often a source stalled on a missing or incomplete Secret or
	// ServiceAccount looks again: the operator may only get them, not watch them. Zero
	// means DefaultReferenceRecheck.
	ReferenceRecheck time.Duration
}

// DefaultReferenceRecheck: see IdentityOptions.ReferenceRecheck. One get per minute per
// stalled source is cheap; a fix is picked up within a minute, or at once with the
// refresh annotation.
const DefaultReferenceRecheck = time.Minute

// credentialsRetryCap bounds the failure backoff of a source whose credentials the tenant
// controls (a Secret or a ServiceAccount): without a watch on them, the fix is picked up
// by the next retry, so the retry must come soon.
const credentialsRetryCap = 2 * time.Minute

func (o *IdentityOptions) defaults() error {
	if o.OperatorIdentityNamespaces == nil {
		sel, err := labels.Parse(DefaultOperatorIdentityNamespaceSelector)
		if err != nil {
			return fmt.Errorf("parsing the default operator identity selector: %w", err)
		}
		o.OperatorIdentityNamespaces = sel
	}
	if o.STSAudience == "" {
		o.STSAudience = DefaultSTSAudience
	}
	if o.ReferenceRecheck <= 0 {
		o.ReferenceRecheck = DefaultReferenceRecheck
	}
	return nil
}

// providerOf is the credentials provider of a source; no credentials block means Default.
func providerOf(src *v1.S3Source) v1.CredentialsProvider {
	if c := src.Spec.Credentials; c != nil && c.Provider != "" {
		return c.Provider
	}
	return v1.CredentialsDefault
}

// tenantCredentials reports whether the tenant controls the source's credentials (a
// Secret or a ServiceAccount of its namespace).
func tenantCredentials(src *v1.S3Source) bool {
	p := providerOf(src)
	return p == v1.CredentialsSecret || p == v1.CredentialsServiceAccount
}

// identity is what stepIdentity resolved about who the source acts as.
type identity struct {
	// externalID is the operator-generated external ID (provider Default with assumeRole).
	externalID string
	// webIdentity is the role and ServiceAccount of provider ServiceAccount.
	webIdentity *bucket.WebIdentity
}

// ExternalIDFor is the external ID the operator sends when it assumes a role with its own
// identity for a source of the namespace with this UID. A namespace's UID is assigned by
// the API server, never chosen by a tenant, and is stable for the namespace's life; a
// namespace deleted and recreated under the same name gets a new one, so a new owner of
// the name does not inherit the old owner's role trust.
func ExternalIDFor(namespaceUID string) string { return ExternalIDPrefix + namespaceUID }

// stepIdentity decides who the source acts as, before any S3 call: the operator's own
// identity only in namespaces the admin allowed, a ServiceAccount only if it exists in
// the source's namespace with a role annotation.
func (r *S3SourceReconciler) stepIdentity(ctx context.Context, s *sourceScope) (time.Duration, error) {
	src := s.src
	id := &identity{}
	switch providerOf(src) {
	case v1.CredentialsDefault:
		var ns metav1.PartialObjectMetadata
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		if err := r.Get(ctx, client.ObjectKey{Name: src.Namespace}, &ns); err != nil {
			return 0, fmt.Errorf("reading namespace %s: %w", src.Namespace, err)
		}
		allowed := r.Identity.OperatorIdentityNamespaces // never nil: SetupWithManager defaults it
		if !allowed.Matches(labels.Set(ns.Labels)) {
			s.identity = id // resolved: no external ID
			if s.running {
				// The admin withdrew the namespace's permission: stop reading with it now.
				stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
				defer cancel()
				r.runs.stop(stopCtx, s.key)
				s.running = false
			}
			return 0, &stepFailure{reason: v1.ReasonOperatorIdentityNotAllowed, stalled: true, message: fmt.Sprintf(
				"namespace %s may not use the operator's own identity (credentials.provider Default, also with assumeRole): "+
					"use credentials.provider ServiceAccount (a ServiceAccount of this namespace whose eks.amazonaws.com/role-arn annotation names your role) "+
					"or Secret (your own keys), or ask the platform admin to allow this namespace (namespace selector %q)",
				src.Namespace, allowed.String())}
		}
		if c := src.Spec.Credentials; c != nil && c.AssumeRole != nil {
			id.externalID = ExternalIDFor(string(ns.UID))
		}
	case v1.CredentialsServiceAccount:
		// The operator may not watch ServiceAccounts, so it reads the one named with a live
		// GET: once per generation and ReferenceRecheck, not on every reconcile of every
		// source (a run mints its token when it starts, whatever was cached).
		if m := s.memo; m.serviceAccount != nil && m.serviceAccountRead.current(src.Generation, s.now, r.Identity.ReferenceRecheck) {
			id.webIdentity = m.serviceAccount
			break
		}
		wi, err := r.serviceAccountIdentity(ctx, src)
		if err != nil {
			r.runs.remember(s.key, func(m *runMemo) { m.serviceAccount = nil })
			return 0, err
		}
		r.runs.remember(s.key, func(m *runMemo) {
			m.serviceAccount, m.serviceAccountRead = wi, secretRead{generation: src.Generation, at: s.now}
		})
		id.webIdentity = wi
	}
	s.identity = id
	return 0, nil
}

// roleARN is an IAM role ARN as AWS (and S3-compatible services' STS) spell it.
var roleARN = regexp.MustCompile(`^arn:[a-z0-9-]+:iam::[0-9]{0,12}:role/[\w+=,.@/-]+$`)

// serviceAccountIdentity reads the ServiceAccount (get only: the operator holds no
// list/watch on ServiceAccounts) and returns the web identity its tokens assume.
func (r *S3SourceReconciler) serviceAccountIdentity(ctx context.Context, src *v1.S3Source) (*bucket.WebIdentity, error) {
	name := src.Spec.Credentials.ServiceAccountName
	ref := src.Namespace + "/" + name
	var sa corev1.ServiceAccount
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: src.Namespace, Name: name}, &sa)
	if apierrors.IsNotFound(err) {
		return nil, &stepFailure{reason: v1.ReasonServiceAccountNotFound, stalled: true, recheck: true, message: fmt.Sprintf(
			"ServiceAccount %s named by spec.credentials.serviceAccountName does not exist: create it in the source's namespace with the annotation %s: <role ARN>; the operator checks again every %s",
			ref, v1.ServiceAccountRoleAnnotation, r.Identity.ReferenceRecheck)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading ServiceAccount %s: %w", ref, err)
	}
	arn := strings.TrimSpace(sa.Annotations[v1.ServiceAccountRoleAnnotation])
	switch {
	case arn == "":
		return nil, &stepFailure{reason: v1.ReasonInvalidServiceAccount, stalled: true, recheck: true, message: fmt.Sprintf(
			"ServiceAccount %s has no %s annotation: annotate it with the ARN of the IAM role its tokens may assume (e.g. arn:aws:iam::123456789012:role/data-import); the operator checks again every %s",
			ref, v1.ServiceAccountRoleAnnotation, r.Identity.ReferenceRecheck)}
	case len(arn) > 2048 || !roleARN.MatchString(arn):
		return nil, &stepFailure{reason: v1.ReasonInvalidServiceAccount, stalled: true, recheck: true, message: fmt.Sprintf(
			"the %s annotation of ServiceAccount %s is not an IAM role ARN (want e.g. arn:aws:iam::123456789012:role/data-import); the operator checks again every %s",
			v1.ServiceAccountRoleAnnotation, ref, r.Identity.ReferenceRecheck)}
	}
	return &bucket.WebIdentity{
		RoleARN:     arn,
		SessionName: sessionName(src),
		Token:       r.serviceAccountToken(src.Namespace, name),
		STSEndpoint: r.Identity.STSEndpoint,
		Describe:    "ServiceAccount " + ref,
	}, nil
}

// serviceAccountToken returns a function that requests a fresh token for the
// ServiceAccount with the TokenRequest API, for the STS audience. The token is never
// stored, logged or put in status.
func (r *S3SourceReconciler) serviceAccountToken(ns, name string) func(context.Context) (string, error) {
	audience := r.Identity.STSAudience
	return func(ctx context.Context) (string, error) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: ptr.To(int64(tokenExpiration / time.Second)),
		}}
		if err := r.SubResource("token").Create(ctx, sa, tr); err != nil {
			return "", fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", ns, name, err)
		}
		return tr.Status.Token, nil
	}
}

// sessionName names the STS session after the source, so the bucket owner's CloudTrail
// shows which source read: at most 64 characters of [\w+=,.@-].
func sessionName(src *v1.S3Source) string {
	n := sessionUnsafe.ReplaceAllString("dataimport@"+src.Namespace+"."+src.Name, "-")
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

var sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// bucketConfig turns a source, its resolved identity and its Secrets (always in the
// source's own namespace) into a bucket.Config. Missing Secrets or keys stall the source:
// only the user can fix them.
func (r *S3SourceReconciler) bucketConfig(ctx context.Context, src *v1.S3Source, id *identity) (bucket.Config, error) {
	cfg := bucket.Config{
		Bucket: src.Spec.Bucket, Region: src.Spec.Region, Endpoint: src.Spec.Endpoint,
		ForcePathStyle: src.Spec.ForcePathStyle, Policy: r.endpointPolicy, Transports: r.transports,
	}
	if src.Spec.Timeout != nil {
		cfg.Timeout = src.Spec.Timeout.Duration
	}
	if ref := src.Spec.CASecretRef; ref != nil {
		data, err := r.secretData(ctx, src.Namespace, ref.Name, "caSecretRef")
		if err != nil {
			return cfg, err
		}
		if len(data[SecretCABundle]) == 0 {
			return cfg, &stepFailure{reason: v1.ReasonInvalidSpec, stalled: true, recheck: true,
				message: fmt.Sprintf("CA Secret %s/%s has no %q key: put the PEM bundle that signs the endpoint's certificate there", src.Namespace, ref.Name, SecretCABundle)}
		}
		cfg.CABundle = data[SecretCABundle]
	}
	if id == nil {
		return cfg, errors.New("bug: the source's identity was not resolved")
	}
	creds := src.Spec.Credentials
	switch providerOf(src) {
	case v1.CredentialsServiceAccount:
		cfg.WebIdentity = id.webIdentity
		return cfg, nil
	case v1.CredentialsSecret:
		data, err := r.secretData(ctx, src.Namespace, creds.SecretRef.Name, "credentials.secretRef")
		if err != nil {
			return cfg, err
		}
		var missing []string
		for _, k := range []string{SecretAccessKeyID, SecretSecretAccessKey} {
			if len(data[k]) == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			be := bucket.MissingSecretKeys(src.Namespace+"/"+creds.SecretRef.Name, missing...)
			return cfg, &stepFailure{reason: v1.ReasonInvalidCredentials, stalled: true, recheck: true, message: be.Message}
		}
		// Trailing newlines from `echo foo | base64` are a common copy-paste slip.
		cfg.Credentials = &bucket.StaticCredentials{
			AccessKeyID:     strings.TrimSpace(string(data[SecretAccessKeyID])),
			SecretAccessKey: strings.TrimSpace(string(data[SecretSecretAccessKey])),
			SessionToken:    strings.TrimSpace(string(data[SecretSessionToken])),
		}
		if ar := creds.AssumeRole; ar != nil {
			// The tenant's own keys assume the tenant's role: its external ID is theirs.
			cfg.AssumeRole = &bucket.AssumeRole{RoleARN: ar.RoleARN, ExternalID: ar.ExternalID, SessionName: ar.SessionName, STSEndpoint: r.Identity.STSEndpoint}
		}
	default:
		if creds != nil && creds.AssumeRole != nil {
			// The operator's identity assumes a role: always with the operator's external ID,
			// never one the tenant chose (CEL refuses spec.credentials.assumeRole.externalID).
			ar := creds.AssumeRole
			cfg.AssumeRole = &bucket.AssumeRole{RoleARN: ar.RoleARN, ExternalID: id.externalID, SessionName: ar.SessionName, STSEndpoint: r.Identity.STSEndpoint}
		}
	}
	return cfg, nil
}

func (r *S3SourceReconciler) secretData(ctx context.Context, ns, name, field string) (map[string][]byte, error) {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &secret)
	if apierrors.IsNotFound(err) {
		return nil, &stepFailure{reason: v1.ReasonSecretNotFound, stalled: true, recheck: true,
			message: fmt.Sprintf("Secret %s/%s named by spec.%s does not exist: create it in the source's namespace; the operator checks again every %s", ns, name, field, r.Identity.ReferenceRecheck)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	return secret.Data, nil
}

// bucketClient builds the S3 client of a source.
func (r *S3SourceReconciler) bucketClient(ctx context.Context, src *v1.S3Source, id *identity) (bucket.Client, error) {
	cfg, err := r.bucketConfig(ctx, src, id)
	if err != nil {
		return nil, err
	}
	c, err := r.NewBucket(ctx, cfg)
	if err != nil {
		reason, msg := bucket.ReasonOf(err), err.Error()
		var be *bucket.Error
		if errors.As(err, &be) {
			msg = be.Message
		}
		// Everything New refuses (the config, the endpoint policy) needs a change of the spec
		// or of the admin's flags.
		return nil, &stepFailure{reason: reason, message: msg, stalled: !bucket.IsTransient(err)}
	}
	return c, nil
}
