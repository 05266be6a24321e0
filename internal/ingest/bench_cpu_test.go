package ingest_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuMeter reports the process's CPU time (user+system, every goroutine and the GC) per
// iteration as cpu-ms/op, leaving out what stopTimer..startTimer bracket (opening a
// fresh store: its migrations). Closing a store stays in: it finishes the checkpoint of
// what the iteration wrote, which the commit may have left to the store's background
// checkpointer. On a machine shared with other work, wall-clock MB/s swings with the
// load while CPU per file stays comparable between runs.
type cpuMeter struct {
	start, excluded, stoppedAt time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() *cpuMeter { return &cpuMeter{start: cpuTime()} }

// stopTimer and startTimer are b.StopTimer and b.StartTimer, keeping the CPU time
// between them out of the count.
func (m *cpuMeter) stopTimer(b *testing.B) {
	b.StopTimer()
	m.stoppedAt = cpuTime()
}

func (m *cpuMeter) startTimer(b *testing.B) {
	m.excluded += cpuTime() - m.stoppedAt
	b.StartTimer()
}

func (m *cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-m.start-m.excluded)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}
