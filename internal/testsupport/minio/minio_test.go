package minio

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestServerLifecycleAndHelpers(t *testing.T) {
	s := Start(t)
	const bucket = "helpers"
	if err := s.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	etag, err := s.Put(bucket, "conversations/a.json", []byte(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	if etag == "" || strings.Contains(etag, `"`) {
		t.Fatalf("Put returned ETag %q, want an unquoted ETag", etag)
	}
	if _, err := s.PutN(bucket, "conversations/n/", 3, func(int) []byte { return []byte("{}") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutMany(bucket, map[string][]byte{"other/b.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListKeys(bucket, "conversations/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"conversations/a.json", "conversations/n/0000000.json", "conversations/n/0000001.json", "conversations/n/0000002.json"}
	if !slices.Equal(keys, want) {
		t.Fatalf("ListKeys = %v, want %v", keys, want)
	}
	if err := s.Delete(bucket, "conversations/a.json"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.ListKeys(bucket, "conversations/a"); len(keys) != 0 {
		t.Fatalf("after Delete, ListKeys = %v", keys)
	}

	dir := s.dir
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s still exists after Stop (err %v)", dir, err)
	}
	if _, err := http.Get(s.Endpoint + "/minio/health/live"); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

// The read-only user is the seed guide's principal: list and get under the prefix, nothing
// else. internal/bucket tests the same through its own client; this checks the policy itself.
func TestReadOnlyUser(t *testing.T) {
	s := Start(t)
	const bucket = "read-only"
	if err := s.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"conversations/in.json", "private/out.json"} {
		if _, err := s.Put(bucket, key, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	ak, sk, err := s.CreateReadOnlyUser(bucket, "conversations/")
	if err != nil {
		t.Fatal(err)
	}
	c := s.newS3Client(ak, sk)
	ctx := context.Background()
	list := func(prefix string) error {
		_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		return err
	}
	get := func(key string) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err == nil {
			_ = out.Body.Close()
		}
		return err
	}
	put := func(key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x")})
		return err
	}
	del := func(key string) error {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		allowed bool
	}{
		{"list prefix", func() error { return list("conversations/") }, true},
		{"list deeper", func() error { return list("conversations/2024/") }, true},
		{"get under prefix", func() error { return get("conversations/in.json") }, true},
		{"list whole bucket", func() error { return list("") }, false},
		{"list other prefix", func() error { return list("private/") }, false},
		{"get outside prefix", func() error { return get("private/out.json") }, false},
		{"put under prefix", func() error { return put("conversations/new.json") }, false},
		{"delete under prefix", func() error { return del("conversations/in.json") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.allowed {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
				t.Fatalf("want AccessDenied, got %v", err)
			}
		})
	}
}

// The upload-only user is the demo's key for dropping one's own file (guide Step 3.3): put
// under the prefix, nothing else.
func TestUploadOnlyUser(t *testing.T) {
	s := Start(t)
	const bucket = "upload-only"
	if err := s.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bucket, "conversations/in.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	ak, sk, err := s.CreateUploadUser(bucket, "conversations/")
	if err != nil {
		t.Fatal(err)
	}
	c := s.newS3Client(ak, sk)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		call    func() error
		allowed bool
	}{
		{"put under prefix", func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("conversations/2025/new.json"), Body: strings.NewReader("[]")})
			return err
		}, true},
		{"put outside prefix", func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("private/new.json"), Body: strings.NewReader("[]")})
			return err
		}, false},
		{"list own prefix", func() error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("conversations/")})
			return err
		}, false},
		{"list whole bucket", func() error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
			return err
		}, false},
		{"get under prefix", func() error {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("conversations/in.json")})
			if err == nil {
				_ = out.Body.Close()
			}
			return err
		}, false},
		{"delete under prefix", func() error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("conversations/in.json")})
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.allowed {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
				t.Fatalf("want AccessDenied, got %v", err)
			}
		})
	}
}

// A killed server comes back on the same port with its data.
func TestKillAndRestart(t *testing.T) {
	s := Start(t)
	const bucket = "survives"
	if err := s.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bucket, "a.json", []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if resp, err := http.Get(s.Endpoint + "/minio/health/live"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("the server still answers after Kill")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListKeys(bucket, "")
	if err != nil || !slices.Equal(keys, []string{"a.json"}) {
		t.Fatalf("after Restart, ListKeys = %v, %v; want the object put before the kill", keys, err)
	}
}
