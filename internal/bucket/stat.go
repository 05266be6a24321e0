package bucket

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Stater looks up one object without reading it. *S3 implements it; the event path
// uses it to learn a named object's ETag and size without listing its prefix.
type Stater interface {
	// Stat is a HeadObject of key (s3:GetObject, the permission reading needs). A missing
	// object fails with ReasonObjectNotFound; every failure is a *Error.
	Stat(ctx context.Context, key string) (Object, error)
}

// Stat implements Stater with HeadObject.
func (c *S3) Stat(ctx context.Context, key string) (Object, error) {
	op := c.op
	op.name, op.path = opReading, key
	reqCtx, cancel := context.WithTimeout(ctx, c.op.timeout)
	defer cancel()
	out, err := c.client.HeadObject(reqCtx, &s3.HeadObjectInput{Bucket: aws.String(c.op.bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, classify(ctx, op, err)
	}
	return Object{
		Key:          key,
		ETag:         unquote(aws.ToString(out.ETag)),
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}
