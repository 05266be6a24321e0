package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// secretNames lists the Secrets a source reads, for the Secret watch.
func secretNames(src *v1.S3Source) []string {
	var names []string
	if c := src.Spec.Credentials; c != nil && c.SecretRef != nil {
		names = append(names, c.SecretRef.Name)
	}
	if src.Spec.CASecretRef != nil {
		names = append(names, src.Spec.CASecretRef.Name)
	}
	return names
}

// bucketConfig turns a source and its Secrets (always in the source's own namespace) into
// a bucket.Config. Missing Secrets or keys stall the source: only the user can fix them.
func (r *S3SourceReconciler) bucketConfig(ctx context.Context, src *v1.S3Source) (bucket.Config, error) {
	cfg := bucket.Config{
		Bucket: src.Spec.Bucket, Region: src.Spec.Region, Endpoint: src.Spec.Endpoint,
		ForcePathStyle: src.Spec.ForcePathStyle, Policy: r.endpointPolicy,
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
			return cfg, &stepFailure{reason: v1.ReasonInvalidSpec, stalled: true,
				message: fmt.Sprintf("CA Secret %s/%s has no %q key: put the PEM bundle that signs the endpoint's certificate there", src.Namespace, ref.Name, SecretCABundle)}
		}
		cfg.CABundle = data[SecretCABundle]
	}
	creds := src.Spec.Credentials
	if creds == nil {
		return cfg, nil
	}
	if creds.Provider == v1.CredentialsSecret && creds.SecretRef != nil {
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
			return cfg, &stepFailure{reason: v1.ReasonInvalidCredentials, stalled: true, message: be.Message}
		}
		// Trailing newlines from `echo foo | base64` are a common copy-paste slip.
		cfg.Credentials = &bucket.StaticCredentials{
			AccessKeyID:     strings.TrimSpace(string(data[SecretAccessKeyID])),
			SecretAccessKey: strings.TrimSpace(string(data[SecretSecretAccessKey])),
			SessionToken:    strings.TrimSpace(string(data[SecretSessionToken])),
		}
	}
	if ar := creds.AssumeRole; ar != nil {
		cfg.AssumeRole = &bucket.AssumeRole{RoleARN: ar.RoleARN, ExternalID: ar.ExternalID, SessionName: ar.SessionName}
	}
	return cfg, nil
}

func (r *S3SourceReconciler) secretData(ctx context.Context, ns, name, field string) (map[string][]byte, error) {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &secret)
	if apierrors.IsNotFound(err) {
		return nil, &stepFailure{reason: v1.ReasonSecretNotFound, stalled: true,
			message: fmt.Sprintf("Secret %s/%s named by spec.%s does not exist: create it in the source's namespace", ns, name, field)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	return secret.Data, nil
}

// secretsFingerprint identifies the versions of the Secrets a source reads (from the
// metadata cache), so a changed Secret can retry a failing source at once.
func (r *S3SourceReconciler) secretsFingerprint(ctx context.Context, src *v1.S3Source) (string, error) {
	var parts []string
	for _, name := range secretNames(src) {
		var meta metav1.PartialObjectMetadata
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		err := r.Get(ctx, client.ObjectKey{Namespace: src.Namespace, Name: name}, &meta)
		switch {
		case apierrors.IsNotFound(err):
			parts = append(parts, name+"=absent")
		case err != nil:
			return "", fmt.Errorf("reading Secret %s/%s metadata: %w", src.Namespace, name, err)
		default:
			parts = append(parts, name+"="+meta.ResourceVersion)
		}
	}
	return strings.Join(parts, ","), nil
}

// bucketClient builds the S3 client of a source.
func (r *S3SourceReconciler) bucketClient(ctx context.Context, src *v1.S3Source) (bucket.Client, error) {
	cfg, err := r.bucketConfig(ctx, src)
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
