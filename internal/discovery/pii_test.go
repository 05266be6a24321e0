package discovery

import (
	"slices"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

func TestPIIAddsUpPerValidator(t *testing.T) {
	redact := ingest.PIICount{Validator: "phone", Type: ingest.PIIPhone, Action: ingest.ActionRedact, Matches: 2, Records: 1}
	flag := ingest.PIICount{Validator: "email", Type: ingest.PIIEmail, Action: ingest.ActionFlag, Matches: 1, Records: 1}
	reject := ingest.PIICount{Validator: "card", Type: ingest.PIICard, Action: ingest.ActionReject, Matches: 1, Records: 1}
	tests := []struct {
		name                        string
		files                       []ingest.Result
		want                        []ingest.PIICount
		redactedFiles, flaggedFiles int64
	}{
		{name: "none", files: []ingest.Result{{State: store.FileIngested}}},
		{name: "two ingested files add up", files: []ingest.Result{
			{State: store.FileIngested, PII: []ingest.PIICount{redact, flag}},
			{State: store.FileIngested, PII: []ingest.PIICount{redact}},
		}, want: []ingest.PIICount{{Validator: "phone", Type: ingest.PIIPhone, Action: ingest.ActionRedact, Matches: 4, Records: 2}, flag},
			redactedFiles: 2, flaggedFiles: 1},
		{name: "a failed file counts only its rejections", files: []ingest.Result{
			{State: store.FileFailed, PII: []ingest.PIICount{redact, flag, reject}},
		}, want: []ingest.PIICount{reject}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res Result
			for _, f := range tt.files {
				res.addPII(f)
			}
			if !slices.Equal(res.PII, tt.want) || res.FilesRedacted != tt.redactedFiles || res.FilesFlagged != tt.flaggedFiles {
				t.Errorf("PII %+v, files redacted %d, flagged %d; want %+v, %d, %d", res.PII, res.FilesRedacted, res.FilesFlagged, tt.want, tt.redactedFiles, tt.flaggedFiles)
			}
		})
	}
}
