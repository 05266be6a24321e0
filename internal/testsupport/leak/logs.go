package leak

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// CaptureLevel is the level logs are captured at: every verbosity the operator and
// controller-runtime use (logr's V(n) is zap level -n), whatever the console shows.
const CaptureLevel = zapcore.Level(-127)

// LogCapture keeps a copy of everything a controller-runtime zap logger writes, at every
// level, encoded as in development mode (what the operator's console shows). Use Opts
// when building the logger; the logger's own output and level are unchanged.
type LogCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements zapcore.WriteSyncer.
func (c *LogCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// Sync implements zapcore.WriteSyncer.
func (c *LogCapture) Sync() error { return nil }

// Opts tees the logger's core into the capture:
//
//	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), capture.Opts()))
func (c *LogCapture) Opts() crzap.Opts {
	enc := &crzap.KubeAwareEncoder{Encoder: zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), Verbose: true}
	capture := zapcore.NewCore(enc, c, CaptureLevel)
	return crzap.RawZapOpts(zap.WrapCore(func(core zapcore.Core) zapcore.Core {
		return zapcore.NewTee(core, capture)
	}))
}

// Texts returns the captured lines, one text each, named "log line N" (from 1).
func (c *LogCapture) Texts() []Text {
	c.mu.Lock()
	defer c.mu.Unlock()
	return LogTexts("log", c.buf.String())
}

// LogTexts splits logs into lines named "<name> line N" (from 1). A multi-line entry
// (a stack trace) is several texts; a secret never spans lines.
func LogTexts(name, logs string) []Text {
	lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	out := make([]Text, len(lines))
	for i, l := range lines {
		out[i] = Text{Name: fmt.Sprintf("%s line %d", name, i+1), Body: l}
	}
	return out
}
