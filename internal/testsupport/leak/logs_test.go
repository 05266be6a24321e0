package leak

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// The capture sees every level, whatever the console's level, and the console keeps its own.
func TestLogCapture(t *testing.T) {
	var capture LogCapture
	var console strings.Builder
	log := crzap.New(crzap.UseDevMode(true), crzap.WriteTo(&console), crzap.Level(zapcore.ErrorLevel), capture.Opts())
	log.Info("discovery started", "bucket", "bkt")
	log.V(1).Info("debug detail", "key", secretKey)
	log.V(5).Info("very verbose")
	log.Error(io.ErrUnexpectedEOF, "Reconciler error", "source", "ns/src")

	texts := capture.Texts()
	// Development mode adds a stack trace to the error: lines 5 and on.
	for i, msg := range []string{"discovery started", "debug detail", "very verbose", "Reconciler error"} {
		if i >= len(texts) || !strings.Contains(texts[i].Body, msg) {
			t.Fatalf("line %d is not %q: %q", i+1, msg, texts)
		}
	}
	if strings.Contains(console.String(), "debug detail") || !strings.Contains(console.String(), "Reconciler error") {
		t.Errorf("console output changed: %q", console.String())
	}
	got := NewScanner(Secret{Name: "k", Value: secretKey}).Scan(texts...)
	if want := []Finding{{Text: "log line 2", Kind: "k", Offset: strings.Index(texts[1].Body, secretKey)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("findings = %v, want %v", got, want)
	}
}

func TestLogTexts(t *testing.T) {
	for _, tc := range []struct {
		logs string
		want []Text
	}{
		{"", nil},
		{"a\n", []Text{{"l line 1", "a"}}},
		{"a\nb", []Text{{"l line 1", "a"}, {"l line 2", "b"}}},
		{"a\n\nc\n", []Text{{"l line 1", "a"}, {"l line 2", ""}, {"l line 3", "c"}}},
	} {
		if got := LogTexts("l", tc.logs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LogTexts(%q) = %q, want %q", tc.logs, got, tc.want)
		}
	}
}
