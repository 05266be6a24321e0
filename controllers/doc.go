// Package controllers holds the S3Source and IngestionQuota reconcilers. They are thin:
// discovery and ingestion live in internal/, which knows nothing of Kubernetes.
package controllers
