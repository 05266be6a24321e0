package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/avon-ai/data-import-operator/internal/testsupport/leak"
)

// transcript is the demo's output: written through to the terminal and kept, so the leak
// scan can prove the demo printed no secret. Steps may print from two goroutines.
type transcript struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

func (t *transcript) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	return t.w.Write(p)
}

func (t *transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// leakScan looks for every secret of the run where none may be: the statuses and events
// the tenant reads, the operator's log and metrics, and what the demo printed. The secrets
// are every Secret's values (the tenant's MinIO secret key), MinIO's root password, the
// kubeconfigs' keys and the upload-only key (forgiven only where the demo prints it on
// purpose), and tokens, presigned URLs and signatures by their shape.
func (d *demo) leakScan(ctx context.Context) error {
	d.section("no key, token or presigned URL in status, events, the operator's log and metrics, or this output")
	known := []leak.Secret{{Name: "MinIO root password", Value: d.stack.s3.RootPassword}}
	// The upload-only key's secret is looked for everywhere; only its deliberate prints in
	// the demo's own output are forgiven below, by its name.
	if d.uploadSecret != "" {
		known = append(known, leak.Secret{Name: uploadKeyName, Value: d.uploadSecret})
	}
	known = append(known, leak.RESTConfigSecrets("the demo's API client", d.stack.kube.Config)...)
	for name, path := range map[string]string{"the admin's kubeconfig": d.kubeconfig, "the tenant's kubeconfig": d.tenantKubeconfig} {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		known = append(known, leak.RESTConfigSecrets(name, cfg)...)
	}
	managerLog, err := os.ReadFile(filepath.Join(d.dir, "manager.log"))
	if err != nil {
		return fmt.Errorf("reading the operator's log: %w", err)
	}
	metrics, err := d.metricsText(ctx)
	if err != nil {
		return err
	}
	texts := leak.LogTexts("the operator's metrics", metrics)
	if t, ok := d.out.(*transcript); ok {
		texts = append(texts, leak.LogTexts("the demo's output", t.String())...)
	}
	r, err := leak.Check(ctx, d.cl, leak.Options{Known: known, Logs: leak.LogTexts(".demo/manager.log", string(managerLog)), Texts: texts})
	if err != nil {
		return fmt.Errorf("scanning for leaked secrets: %w", err)
	}
	// The demo prints its upload-only key on purpose (dropOwnFile, howTo): a throwaway key of
	// this local MinIO that may only put objects under the prefix, for dropping one's own file
	// into the bucket. Those prints, and only those, are not leaks. Anywhere else (a status, an
	// event, the operator's log or metrics) the key is still a finding.
	kept, forgiven := r.Findings[:0:0], 0
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Text, "the demo's output ") && (f.Kind == uploadKeyName || f.Kind == "base64 of "+uploadKeyName) {
			forgiven++
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	d.say("%s", r.Summary())
	d.say("(not counted: %d deliberate print(s) of the demo's upload-only key in this output)", forgiven)
	d.check("no secret in status, events, the operator's log and metrics, or the demo's output", r.Err() == nil, errText(r.Err()))
	return nil
}

// metricsText is what the operator's /metrics serves.
func (d *demo) metricsText(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.metricsURL, nil)
	if err != nil {
		return "", fmt.Errorf("reading the operator's metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the operator's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the operator's metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading the operator's metrics: %s", resp.Status)
	}
	return string(body), nil
}
