package ingest_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuMeter reports the process's CPU time (user+system, every goroutine and the GC) per
// iteration as cpu-ms/op: on a machine shared with other work, wall-clock MB/s swings
// with the load while CPU per file stays comparable between runs.
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{start: cpuTime()} }

func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-m.start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}
