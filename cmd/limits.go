package main

import (
	"fmt"
	"os"
	"syscall"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// bytesFlag is a flag holding a byte count written as the API writes quantities: decimal
// units, 500M = 500,000,000 bytes (500Mi = 524,288,000).
type bytesFlag int64

func newBytesFlag(def string) *bytesFlag {
	q := resource.MustParse(def)
	b := bytesFlag(q.Value())
	return &b
}

func (b *bytesFlag) String() string {
	if b == nil {
		return ""
	}
	return resource.NewQuantity(int64(*b), resource.DecimalSI).String()
}

func (b *bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a quantity such as 100M or 10G: %w", s, err)
	}
	if q.Sign() <= 0 {
		return fmt.Errorf("%q must be greater than zero", s)
	}
	*b = bytesFlag(q.Value())
	return nil
}

// checkLimits refuses flags that cannot work together: a file size ceiling above the
// daily one, or a spool directory that cannot hold the downloads in flight.
func checkLimits(ceil controllers.Ceilings, opts controllers.SourceOptions) error {
	if ceil.MaxFileSize > ceil.DailyLimit {
		return fmt.Errorf("--max-file-size=%s is above --max-daily-limit=%s: no file that large could ever be ingested",
			quota.FormatBytes(ceil.MaxFileSize), quota.FormatBytes(ceil.DailyLimit))
	}
	if opts.ConcurrentFiles < 1 {
		return fmt.Errorf("--concurrent-files=%d: at least one download must be allowed", opts.ConcurrentFiles)
	}
	free, err := freeBytes(opts.SpoolDir)
	if err != nil {
		return err
	}
	return checkSpool(opts.SpoolDir, free, opts.ConcurrentFiles, ceil.MaxFileSize)
}

// checkSpool says whether free bytes hold concurrentFiles downloads of maxFileSize each,
// counted SpoolCopiesPerDownload times (the object, and a ZIP archive's copy).
func checkSpool(dir string, free uint64, concurrentFiles int, maxFileSize int64) error {
	need := uint64(concurrentFiles) * controllers.SpoolCopiesPerDownload * uint64(maxFileSize)
	if need <= free {
		return nil
	}
	return fmt.Errorf("the spool directory %s has %s free, but --concurrent-files=%d downloads of up to --max-file-size=%s need %s "+
		"(each download is spooled there, and a ZIP archive is copied once more): lower --max-file-size or --concurrent-files, "+
		"or give --spool-dir a larger volume (in Kubernetes, the emptyDir sizeLimit of the manager's Deployment)",
		dir, quota.FormatBytes(clampInt64(free)), concurrentFiles, quota.FormatBytes(maxFileSize), quota.FormatBytes(clampInt64(need)))
}

// freeBytes is what an unprivileged process may still write in dir's file system.
func freeBytes(dir string) (uint64, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, fmt.Errorf("--spool-dir: %w", err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("--spool-dir %s is not a directory", dir)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("--spool-dir %s: reading the file system's free space: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func clampInt64(v uint64) int64 {
	if v > 1<<62 {
		return 1 << 62
	}
	return int64(v)
}
