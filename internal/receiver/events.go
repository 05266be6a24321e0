// Package receiver serves the S3Source webhook endpoint: it authenticates a request
// against the token of the source its path names and turns the S3 event notification in
// its body into object keys. It knows nothing of Kubernetes; the controller registers
// sources and takes the keys.
package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Object is one object an event names. Size and ETag are what the sender saw; the
// operator looks the object up itself before deciding anything.
type Object struct {
	Bucket string
	Key    string
}

// Notification is what one request body says.
type Notification struct {
	// Objects created or overwritten (other events, deletions included, are dropped: the
	// scheduled discovery prunes the ledger).
	Objects []Object
	// Confirmation is set for an SNS SubscriptionConfirmation.
	Confirmation *Confirmation
}

// Confirmation is an SNS HTTPS subscription asking to be confirmed.
type Confirmation struct {
	TopicARN string
	// SubscribeURL confirms the subscription when fetched. It carries a confirmation
	// token: never log, event or status it.
	SubscribeURL string
}

// ErrMalformed wraps every parse failure: the sender gets 400.
var ErrMalformed = errors.New("malformed event")

// s3Event is the S3 event notification format that MinIO and Ceph webhook targets post
// and that AWS S3 publishes to SNS (and SQS, Lambda).
type s3Event struct {
	// MinIO adds EventName and Key at the top; Records is the S3 format proper.
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	// AWS sends {"Event":"s3:TestEvent"} when a configuration is saved.
	Event string `json:"Event"`
}

// eventBridge is an S3 event delivered by an EventBridge rule to an API destination.
type eventBridge struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key string `json:"key"`
		} `json:"object"`
	} `json:"detail"`
}

// snsMessage is an SNS HTTPS delivery.
type snsMessage struct {
	Type         string `json:"Type"`
	TopicARN     string `json:"TopicArn"`
	Message      string `json:"Message"`
	SubscribeURL string `json:"SubscribeURL"`
}

// Parse reads one request body: an S3 event notification (MinIO, Ceph, or AWS through
// SNS), an EventBridge event, or an SNS message. A well-formed body about something else
// (a test event, a deletion) yields no objects and no error.
func Parse(body []byte) (Notification, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return Notification{}, fmt.Errorf("%w: the body is not a JSON object", ErrMalformed)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case probe["Records"] != nil || probe["Event"] != nil:
		return parseS3(body)
	case probe["detail-type"] != nil:
		return parseEventBridge(body)
	case probe["Type"] != nil && probe["TopicArn"] != nil:
		return parseSNS(body)
	}
	return Notification{}, fmt.Errorf("%w: neither an S3 event notification (Records), an EventBridge event (detail-type) nor an SNS message (Type, TopicArn)", ErrMalformed)
}

func parseS3(body []byte) (Notification, error) {
	var ev s3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Notification{}, fmt.Errorf("%w: S3 event notification: %v", ErrMalformed, err)
	}
	var n Notification
	for i, rec := range ev.Records {
		// MinIO prefixes event names with "s3:"; AWS and Ceph do not.
		if !strings.HasPrefix(strings.TrimPrefix(rec.EventName, "s3:"), "ObjectCreated:") {
			continue
		}
		bkt, raw := rec.S3.Bucket.Name, rec.S3.Object.Key
		if bkt == "" || raw == "" {
			return Notification{}, fmt.Errorf("%w: Records[%d]: s3.bucket.name and s3.object.key are required", ErrMalformed, i)
		}
		// Keys are URL-encoded as in a form (a space is "+").
		key, err := url.QueryUnescape(raw)
		if err != nil {
			return Notification{}, fmt.Errorf("%w: Records[%d].s3.object.key is not URL-encoded: %v", ErrMalformed, i, err)
		}
		n.Objects = append(n.Objects, Object{Bucket: bkt, Key: key})
	}
	return n, nil
}

func parseEventBridge(body []byte) (Notification, error) {
	var ev eventBridge
	if err := json.Unmarshal(body, &ev); err != nil {
		return Notification{}, fmt.Errorf("%w: EventBridge event: %v", ErrMalformed, err)
	}
	if ev.DetailType != "Object Created" {
		return Notification{}, nil
	}
	bkt, key := ev.Detail.Bucket.Name, ev.Detail.Object.Key
	if bkt == "" || key == "" {
		return Notification{}, fmt.Errorf("%w: EventBridge event: detail.bucket.name and detail.object.key are required", ErrMalformed)
	}
	n := Notification{Objects: []Object{{Bucket: bkt, Key: key}}}
	// AWS documents S3 notification keys as URL-encoded; EventBridge's are not said to be.
	// Both readings are candidates: the one that names no object is a HEAD that finds
	// nothing, never a download.
	if dec, err := url.QueryUnescape(key); err == nil && dec != key {
		n.Objects = append(n.Objects, Object{Bucket: bkt, Key: dec})
	}
	return n, nil
}

func parseSNS(body []byte) (Notification, error) {
	var msg snsMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return Notification{}, fmt.Errorf("%w: SNS message: %v", ErrMalformed, err)
	}
	switch msg.Type {
	case "SubscriptionConfirmation":
		if msg.SubscribeURL == "" {
			return Notification{}, fmt.Errorf("%w: SNS SubscriptionConfirmation without SubscribeURL", ErrMalformed)
		}
		return Notification{Confirmation: &Confirmation{TopicARN: msg.TopicARN, SubscribeURL: msg.SubscribeURL}}, nil
	case "Notification":
		n, err := Parse([]byte(msg.Message))
		if err != nil {
			return Notification{}, fmt.Errorf("SNS Message: %w", err)
		}
		if n.Confirmation != nil {
			return Notification{}, fmt.Errorf("%w: SNS Message holds another SNS message", ErrMalformed)
		}
		return n, nil
	}
	return Notification{}, nil // UnsubscribeConfirmation and the like
}
