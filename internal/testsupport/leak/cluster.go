package leak

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// pageSize bounds each List call: a cluster after a long test run can hold many events.
const pageSize = 500

// publicKey matches Secret data keys whose values are not secret: access key IDs (shown
// on purpose in messages), external IDs and role ARNs (AWS documents neither as secret;
// status shows the external ID), regions and certificates. Everything else counts.
var publicKey = regexp.MustCompile(`(?i)(access[_-]?key[_-]?id|^accesskey$|external[_-]?id$|role[_-]?arn$|region$|(^|\.)crt$|^ca\.pem$)`)

// IsPublicKey reports whether a Secret's data key holds a value that is not secret.
func IsPublicKey(secretType corev1.SecretType, key string) bool {
	if secretType == corev1.SecretTypeServiceAccountToken && key == corev1.ServiceAccountNamespaceKey {
		return true
	}
	return publicKey.MatchString(key)
}

// SecretsOf lists every Secret in the cluster (all namespaces: the client must be
// allowed to) and returns their secret values, named "Secret ns/name key K".
func SecretsOf(ctx context.Context, c client.Reader) ([]Secret, error) {
	var out []Secret
	var list corev1.SecretList
	opts := []client.ListOption{client.Limit(pageSize)}
	for {
		if err := c.List(ctx, &list, opts...); err != nil {
			return nil, fmt.Errorf("listing Secrets: %w", err)
		}
		for _, s := range list.Items {
			for _, k := range sortedKeys(s.Data) {
				if !IsPublicKey(s.Type, k) {
					out = append(out, Secret{Name: fmt.Sprintf("Secret %s/%s key %s", s.Namespace, s.Name, k), Value: string(s.Data[k])})
				}
			}
		}
		if list.Continue == "" {
			return out, nil
		}
		opts = []client.ListOption{client.Limit(pageSize), client.Continue(list.Continue)}
	}
}

// RESTConfigSecrets returns the credentials in a rest.Config (the admin's, a tenant's):
// bearer token, password and client key.
func RESTConfigSecrets(name string, cfg *rest.Config) []Secret {
	return []Secret{
		{Name: name + " bearer token", Value: cfg.BearerToken},
		{Name: name + " password", Value: cfg.Password},
		{Name: name + " client key", Value: string(cfg.KeyData)},
	}
}

// Kinds the operator writes status to, and the two APIs events are read through.
var (
	statusKinds = []schema.GroupVersionKind{
		v1.GroupVersion.WithKind("S3Source"),
		v1.GroupVersion.WithKind("IngestionQuota"),
	}
	eventKinds = []schema.GroupVersionKind{
		{Group: "events.k8s.io", Version: "v1", Kind: "Event"},
		{Version: "v1", Kind: "Event"},
	}
)

// ClusterTexts returns the status of every S3Source and IngestionQuota and every Event
// (events.k8s.io/v1 and core/v1: one store, two shapes), in all namespaces but skip.
// Each text is the object's string fields, one "path: value" a line, as stored (no
// JSON escaping to hide a secret behind).
func ClusterTexts(ctx context.Context, c client.Reader, skip ...string) (statuses, events []Text, err error) {
	skipped := map[string]bool{}
	for _, ns := range skip {
		skipped[ns] = true
	}
	for _, gvk := range statusKinds {
		err := each(ctx, c, gvk, func(u *unstructured.Unstructured) {
			if !skipped[u.GetNamespace()] {
				statuses = append(statuses, Text{
					Name: fmt.Sprintf("status of %s %s/%s", gvk.Kind, u.GetNamespace(), u.GetName()),
					Body: flatten(u.Object["status"]),
				})
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for _, gvk := range eventKinds {
		api := gvk.GroupVersion().String()
		if gvk.Group == "" {
			api = "core/" + api
		}
		err := each(ctx, c, gvk, func(u *unstructured.Unstructured) {
			if !skipped[u.GetNamespace()] {
				unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
				events = append(events, Text{
					Name: fmt.Sprintf("event %s/%s (%s)", u.GetNamespace(), u.GetName(), api),
					Body: flatten(u.Object),
				})
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return statuses, events, nil
}

func each(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind, f func(*unstructured.Unstructured)) error {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	opts := []client.ListOption{client.Limit(pageSize)}
	for {
		if err := c.List(ctx, list, opts...); err != nil {
			return fmt.Errorf("listing %s: %w", gvk, err)
		}
		for i := range list.Items {
			f(&list.Items[i])
		}
		if list.GetContinue() == "" {
			return nil
		}
		opts = []client.ListOption{client.Limit(pageSize), client.Continue(list.GetContinue())}
	}
}

// flatten writes every string in v (a JSON-like tree) as "path: value" lines, in a
// stable order; map keys (annotations, labels) are in the paths. Numbers and booleans
// cannot hold a secret and are left out.
func flatten(v any) string {
	var b strings.Builder
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			b.WriteString(path + ": " + v + "\n")
		}
	}
	walk("", v)
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
