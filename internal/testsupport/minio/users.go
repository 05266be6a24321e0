package minio

import (
	"encoding/json"
	"fmt"

	"github.com/minio/madmin-go/v3"
)

// ReadOnlyPolicy is the seed guide's read-only principal (Step 3 §1) as a MinIO policy:
// s3:ListBucket on the bucket only for s3:prefix under prefix, and s3:GetObject on the
// objects under prefix. MinIO's built-in "readonly" policy lacks s3:ListBucket.
func ReadOnlyPolicy(bucket, prefix string) []byte {
	type statement struct {
		Effect    string         `json:"Effect"`
		Action    []string       `json:"Action"`
		Resource  []string       `json:"Resource"`
		Condition map[string]any `json:"Condition,omitempty"`
	}
	policy := map[string]any{
		"Version": "2012-10-17",
		"Statement": []statement{
			{
				Effect:    "Allow",
				Action:    []string{"s3:ListBucket"},
				Resource:  []string{"arn:aws:s3:::" + bucket},
				Condition: map[string]any{"StringLike": map[string][]string{"s3:prefix": {prefix + "*"}}},
			},
			{
				Effect:   "Allow",
				Action:   []string{"s3:GetObject"},
				Resource: []string{"arn:aws:s3:::" + bucket + "/" + prefix + "*"},
			},
		},
	}
	b, err := json.Marshal(policy)
	if err != nil {
		panic(err) // static types: cannot fail
	}
	return b
}

// UploadOnlyPolicy is a customer's own upload key, as the demo hands one out for the
// guide's Step 3.3 ("drop a sample file"): s3:PutObject on the objects under prefix and
// nothing else, so it can neither list (not even its own prefix) nor read, nor write
// elsewhere in the bucket. Multipart uploads (aws s3 cp of a large file) need no more:
// MinIO authorizes their parts and completion as s3:PutObject.
func UploadOnlyPolicy(bucket, prefix string) []byte {
	b, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":   "Allow",
			"Action":   []string{"s3:PutObject"},
			"Resource": []string{"arn:aws:s3:::" + bucket + "/" + prefix + "*"},
		}},
	})
	if err != nil {
		panic(err) // static types: cannot fail
	}
	return b
}

// CreateUploadUser creates a user with UploadOnlyPolicy(bucket, prefix) and returns its
// access key and secret key.
func (s *Server) CreateUploadUser(bucket, prefix string) (accessKey, secretKey string, err error) {
	return s.CreateUserWithPolicy(UploadOnlyPolicy(bucket, prefix))
}

// CreateReadOnlyUser creates a user with ReadOnlyPolicy(bucket, prefix) and returns its
// access key and secret key.
func (s *Server) CreateReadOnlyUser(bucket, prefix string) (accessKey, secretKey string, err error) {
	return s.CreateUserWithPolicy(ReadOnlyPolicy(bucket, prefix))
}

// CreateUserWithPolicy creates a user whose only policy is policyJSON (an IAM policy
// document) and returns its access key and secret key.
func (s *Server) CreateUserWithPolicy(policyJSON []byte) (accessKey, secretKey string, err error) {
	ctx, cancel := helperContext()
	defer cancel()
	accessKey, secretKey = "user"+randomHex(8), randomHex(20)
	policyName := "policy-" + accessKey
	if err := s.admin.AddCannedPolicy(ctx, policyName, policyJSON); err != nil {
		return "", "", fmt.Errorf("adding policy %s: %w", policyName, err)
	}
	if err := s.admin.AddUser(ctx, accessKey, secretKey); err != nil {
		return "", "", fmt.Errorf("adding user %s: %w", accessKey, err)
	}
	if _, err := s.admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policyName}, User: accessKey}); err != nil {
		return "", "", fmt.Errorf("attaching policy %s to %s: %w", policyName, accessKey, err)
	}
	return accessKey, secretKey, nil
}

// AddPolicy adds (or replaces) the canned policy name, e.g. one that an OpenID claim names
// for AssumeRoleWithWebIdentity.
func (s *Server) AddPolicy(name string, policyJSON []byte) error {
	ctx, cancel := helperContext()
	defer cancel()
	if err := s.admin.AddCannedPolicy(ctx, name, policyJSON); err != nil {
		return fmt.Errorf("adding policy %s: %w", name, err)
	}
	return nil
}
