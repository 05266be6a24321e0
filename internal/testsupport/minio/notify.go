package minio

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// WebhookEnv configures a webhook notification target named id at start (pass it in
// Options.Env): MinIO posts each event of a bucket configured with WebhookARN(id) to
// endpoint with "Authorization: Bearer <token>". With a queueDir, undelivered events are
// kept there and retried (none is lost while the endpoint is down), but every event then
// waits for MinIO's store replay, which runs every 3 s; without one, events are posted at
// once and dropped when the endpoint does not take them.
func WebhookEnv(id, endpoint, token, queueDir string) []string {
	id = strings.ToUpper(id)
	env := []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_" + id + "=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_" + id + "=" + endpoint,
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_" + id + "=" + token,
	}
	if queueDir != "" {
		env = append(env, "MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+queueDir)
	}
	return env
}

// WebhookARN is the ARN a bucket notification configuration names the target id by.
func WebhookARN(id string) string { return "arn:minio:sqs::" + strings.ToUpper(id) + ":webhook" }

// NotifyOnCreate makes bucket send an event for every object created under prefix to
// the target arn (PutBucketNotificationConfiguration, as a tenant would with the AWS SDK).
func (s *Server) NotifyOnCreate(bucket, prefix, arn string) error {
	ctx, cancel := helperContext()
	defer cancel()
	_, err := s.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			QueueArn: aws.String(arn),
			Events:   []types.Event{types.Event("s3:ObjectCreated:*")},
			Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{
				{Name: types.FilterRuleNamePrefix, Value: aws.String(prefix)},
			}}},
		}}},
	})
	if err != nil {
		return fmt.Errorf("configuring notifications of bucket %s: %w", bucket, err)
	}
	return nil
}
