package bucket_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// One MinIO for the package: starting it is cheap, seeding 2,500 objects is not.
var srv *minio.Server

const (
	testBucket = "data"
	// manyPrefix holds manyObjects objects: three ListObjectsV2 pages.
	manyPrefix  = "many/"
	manyObjects = 2500
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	srv, err = minio.StartServer(minio.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting MinIO:", err)
		return 1
	}
	defer srv.Stop()
	if err := seed(); err != nil {
		fmt.Fprintln(os.Stderr, "seeding MinIO:", err)
		return 1
	}
	return m.Run()
}

func seed() error {
	if err := srv.CreateBucket(testBucket); err != nil {
		return err
	}
	if _, err := srv.PutN(testBucket, manyPrefix, manyObjects, func(i int) []byte {
		return fmt.Appendf(nil, `{"n":%d}`, i)
	}); err != nil {
		return err
	}
	_, err := srv.PutMany(testBucket, map[string][]byte{
		"conversations/2024/01/a.json": []byte(`[{"conversation_id":"a"}]`),
		"conversations/b.jsonl":        []byte(`{"conversation_id":"b"}` + "\n"),
		"private/secret.json":          []byte(`{}`),
	})
	return err
}

// rootConfig is a Config for the MinIO root user; tests adjust copies of it.
func rootConfig() bucket.Config {
	return bucket.Config{
		Bucket:         testBucket,
		Endpoint:       srv.Endpoint,
		ForcePathStyle: true,
		Credentials:    &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: srv.RootPassword},
	}
}

// newClient builds a client for cfg with a CountingTransport in front of it.
func newClient(t testing.TB, cfg bucket.Config) (*bucket.S3, *bucket.CountingTransport) {
	t.Helper()
	ct := &bucket.CountingTransport{}
	cfg.WrapTransport = ct.Wrap
	c, err := bucket.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("bucket.New: %v", err)
	}
	return c, ct
}

// listAll collects a whole listing and the page sizes it came in.
func listAll(ctx context.Context, c bucket.Client, prefix string) ([]bucket.Object, []int, error) {
	var (
		objs  []bucket.Object
		pages []int
	)
	err := c.List(ctx, prefix, func(page []bucket.Object) error {
		pages = append(pages, len(page))
		objs = append(objs, page...)
		return nil
	})
	return objs, pages, err
}

// readObject opens key and reads it whole.
func readObject(ctx context.Context, c bucket.Client, key string, opts ...bucket.OpenOption) ([]byte, bucket.Object, error) {
	rc, obj, err := c.Open(ctx, key, opts...)
	if err != nil {
		return nil, obj, err
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	return b, obj, err
}
