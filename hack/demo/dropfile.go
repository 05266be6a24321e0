package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// ownSample is the file the demo drops into the bucket as a newcomer would drop their own
// (the guide's Step 3.3 names its example sample-conv-001.json).
const ownSample = "sample-conv-001.json"

// uploadKeyName names the upload-only key's secret for the leak scan, which looks for it
// everywhere and forgives it only in the demo's own output, where it is printed on purpose.
const uploadKeyName = "the demo's upload-only key (secret access key)"

// dropOwnFile is the guide's Step 3.3, "drop a sample file to the bucket": in its own S3
// account the customer makes a key that may only put objects under the prefix, checks its
// file with the operator's own rules, and uploads it the way `curl --aws-sigv4` does (an
// HTTP PUT signed with SigV4, here in Go so it runs anywhere). The next refresh ingests it.
func (d *demo) dropOwnFile(ctx context.Context) error {
	d.section("Guide Step 3.3: drop a file of one's own into the bucket, with an upload-only key")
	access, secret, err := d.stack.s3.CreateUploadUser(bucketName, prefix)
	if err != nil {
		return err
	}
	d.uploadKey, d.uploadSecret = access, secret
	var policy any
	if err := json.Unmarshal(minio.UploadOnlyPolicy(bucketName, prefix), &policy); err != nil {
		return fmt.Errorf("reading the upload-only policy: %w", err)
	}
	pretty, err := json.MarshalIndent(policy, "  ", "  ")
	if err != nil {
		return fmt.Errorf("printing the upload-only policy: %w", err)
	}
	d.say("A MinIO user for the customer's own uploads (s3:PutObject under %s only: no list, no read, nothing elsewhere):\n  %s", prefix, pretty)
	d.say("A throwaway key of this local MinIO, printed on purpose so you can use it (the leak scan forgives it in this output only):")
	d.say("  endpoint:              %s\n  AWS_ACCESS_KEY_ID:     %s\n  AWS_SECRET_ACCESS_KEY: %s", d.stack.s3.Endpoint, access, secret)

	file := filepath.Join("config", "samples", "data", phaseOwn, ownSample)
	_, err = d.echoRun(ctx, "tenant$ bin/data-import", d.cli, nil, "validate", file)
	d.check("drop a file: bin/data-import validate accepts "+ownSample+" before it is uploaded", err == nil, errText(err))
	key := d.dayPrefix + ownSample
	d.say("tenant$ %s", curlPut(access, secret, file, d.objectURL(key, nil)))
	d.say("(the demo sends the same SigV4-signed PUT from Go, so it needs no curl)")
	body, err := d.ownSampleBody()
	if err != nil {
		return err
	}
	put, err := d.signed(ctx, http.MethodPut, d.objectURL(key, nil), body)
	if err != nil {
		return err
	}
	d.say("  PUT s3://%s/%s: %s", bucketName, key, put)
	d.check("drop a file: the upload-only key puts "+ownSample+" under "+prefix+" (HTTP 200)", put.status == http.StatusOK, put.String())
	if put.status == http.StatusOK {
		d.sizes[key] = int64(len(body))
		e := expected[ownSample]
		d.say("  expect %s (%s) on the next refresh: the hourly discovery will not run before it", e.state, e.reason)
	}

	d.say("What else the upload-only key may do (each must be AccessDenied):")
	refused := map[string]result{}
	for _, try := range []struct {
		what, method, url string
		body              []byte
	}{
		{"list the bucket", http.MethodGet, d.objectURL("", url.Values{"list-type": {"2"}}), nil},
		{"list its own prefix", http.MethodGet, d.objectURL("", url.Values{"list-type": {"2"}, "prefix": {prefix}}), nil},
		{"read the file it put", http.MethodGet, d.objectURL(key, nil), nil},
		{"put outside " + prefix, http.MethodPut, d.objectURL("private/"+ownSample, nil), body},
	} {
		r, err := d.signed(ctx, try.method, try.url, try.body)
		if err != nil {
			return err
		}
		d.say("  %-26s %s %s: %s", try.what, try.method, strings.TrimPrefix(try.url, d.stack.s3.Endpoint), r)
		refused[try.what] = r
	}
	var allowed []string
	for what, r := range refused {
		if r.code != "AccessDenied" {
			allowed = append(allowed, what+": "+r.String())
		}
	}
	d.check("drop a file: the upload-only key cannot list the bucket or its prefix, read, or put outside the prefix (AccessDenied)",
		len(allowed) == 0, strings.Join(allowed, "; "))
	return nil
}

func (d *demo) ownSampleBody() ([]byte, error) {
	samples, err := loadPhase(d.root, phaseOwn)
	if err != nil {
		return nil, err
	}
	for _, s := range samples {
		if s.name == ownSample {
			return s.body, nil
		}
	}
	return nil, fmt.Errorf("config/samples/data/%s has no %s", phaseOwn, ownSample)
}

// objectURL is the path-style URL of key in the demo bucket (the bucket itself for key "").
func (d *demo) objectURL(key string, query url.Values) string {
	u := d.stack.s3.Endpoint + "/" + bucketName + "/" + key
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// curlPut is the copy-paste curl command that uploads file to objectURL with SigV4.
func curlPut(access, secret, file, objectURL string) string {
	return fmt.Sprintf(`curl --fail-with-body --aws-sigv4 "aws:amz:%s:s3" --user "%s:%s" -T %s %s`, minio.Region, access, secret, file, objectURL)
}

// result is what S3 answered: the HTTP status and, for an error, its code.
type result struct {
	status int
	code   string
}

func (r result) String() string {
	if r.code == "" {
		return fmt.Sprintf("HTTP %d %s", r.status, http.StatusText(r.status))
	}
	return fmt.Sprintf("HTTP %d %s", r.status, r.code)
}

// signed sends one request signed with SigV4 by the upload-only key, as curl --aws-sigv4
// does, and returns the status and S3 error code.
func (d *demo) signed(ctx context.Context, method, rawURL string, body []byte) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: d.uploadKey, SecretAccessKey: d.uploadSecret}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", minio.Region, time.Now()); err != nil {
		return result{}, fmt.Errorf("signing %s %s: %w", method, rawURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return result{}, fmt.Errorf("%s %s: reading the answer: %w", method, rawURL, err)
	}
	r := result{status: resp.StatusCode}
	if resp.StatusCode >= 300 {
		var e struct {
			Code string `xml:"Code"`
		}
		if xml.Unmarshal(text, &e) == nil {
			r.code = e.Code
		}
		if r.code == "" {
			r.code = "(no S3 error code)"
		}
	}
	return r, nil
}

// dropHowTo prints how to drop one's own file into the demo bucket while the demo stays up
// (the guide's Step 3.3), with the upload-only key, and have the operator ingest it.
func (d *demo) dropHowTo(tenantKubeconfig string) {
	objURL := d.objectURL(prefix+`mine/$(basename "$FILE")`, nil)
	d.say(`
Drop your own file into the bucket (Guide Step 3.3) with the customer's upload-only key: endpoint %[1]s,
bucket %[2]s, any key under %[3]s (JSON, JSONL, ZIP or TAR.GZ; start from the sample and change its conversation_id):

  FILE=config/samples/data/%[4]s/%[5]s
  bin/data-import validate "$FILE"                     # the operator's own checks, before uploading

  export AWS_ACCESS_KEY_ID=%[6]s AWS_SECRET_ACCESS_KEY=%[7]s AWS_DEFAULT_REGION=%[8]s
  aws s3 cp "$FILE" "s3://%[2]s/%[3]smine/$(basename "$FILE")" --endpoint-url %[1]s
or, without the AWS CLI:
  %[9]s

then refresh as the tenant (within 60 s of the last discovery it waits for the cooldown) and see the result:

  export KUBECONFIG=%[10]s
  kubectl annotate s3source %[11]s -n %[12]s %[13]s="$(date +%%s)" --overwrite
  kubectl get s3source %[11]s -n %[12]s -o wide
  bin/data-import files --store %[14]s -n %[12]s --source %[11]s
  bin/data-import get   --store %[14]s -n %[12]s --agent AGENT_ID --conversation CONVERSATION_ID`,
		d.stack.s3.Endpoint, bucketName, prefix, phaseOwn, ownSample, d.uploadKey, d.uploadSecret, minio.Region,
		curlPut(d.uploadKey, d.uploadSecret, `"$FILE"`, `"`+objURL+`"`), tenantKubeconfig, sourceName, namespace,
		v1.RefreshAnnotation, d.storeDSN)
}
