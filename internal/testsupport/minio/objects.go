package minio

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(bucket string) error {
	ctx, cancel := helperContext()
	defer cancel()
	if _, err := s.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	return nil
}

// Put stores body at bucket/key and returns the new ETag, without quotes (as bucket.Object).
func (s *Server) Put(bucket, key string, body []byte) (string, error) {
	ctx, cancel := helperContext()
	defer cancel()
	out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(body),
	})
	if err != nil {
		return "", fmt.Errorf("putting s3://%s/%s: %w", bucket, key, err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`), nil
}

// putParallelism keeps many small uploads quick without starving the shared 2-core machine.
const putParallelism = 16

// PutMany stores objects (key → body) in parallel and returns their ETags by key.
func (s *Server) PutMany(bucket string, objects map[string][]byte) (map[string]string, error) {
	var (
		mu    sync.Mutex
		etags = make(map[string]string, len(objects))
		g     errgroup.Group
	)
	g.SetLimit(putParallelism)
	for key, body := range objects {
		g.Go(func() error {
			etag, err := s.Put(bucket, key, body)
			if err != nil {
				return err
			}
			mu.Lock()
			etags[key] = etag
			mu.Unlock()
			return nil
		})
	}
	return etags, g.Wait()
}

// PutN stores n objects named fmt.Sprintf("%s%07d.json", prefix, i) with body(i), in
// parallel, and returns their keys in order. For listings of thousands of objects.
func (s *Server) PutN(bucket, prefix string, n int, body func(i int) []byte) ([]string, error) {
	keys := make([]string, n)
	var g errgroup.Group
	g.SetLimit(putParallelism)
	for i := range n {
		keys[i] = fmt.Sprintf("%s%07d.json", prefix, i)
		g.Go(func() error {
			_, err := s.Put(bucket, keys[i], body(i))
			return err
		})
	}
	return keys, g.Wait()
}

// Delete removes bucket/key.
func (s *Server) Delete(bucket, key string) error {
	ctx, cancel := helperContext()
	defer cancel()
	if _, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("deleting s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// ListKeys returns every key under prefix, in order, as the root user sees them.
func (s *Server) ListKeys(bucket, prefix string) ([]string, error) {
	ctx, cancel := helperContext()
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// BareLister is a plain paginated ListObjectsV2 as the root user: the baseline the
// operator's own listing is benchmarked against.
type BareLister struct{ client *s3.Client }

// BareLister sends its requests through rt (e.g. a counting transport).
func (s *Server) BareLister(rt http.RoundTripper) *BareLister {
	c := s3.New(s3.Options{
		Region: Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.RootUser, s.RootPassword, ""),
		HTTPClient:  &http.Client{Transport: rt},
	})
	return &BareLister{client: c}
}

// Count lists bucket/prefix 1,000 keys a page and returns how many objects it saw.
func (l *BareLister) Count(ctx context.Context, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(l.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		n += len(page.Contents)
	}
	return n, nil
}
