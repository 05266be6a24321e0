package quota

import (
	"errors"
	"math"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1 kB"}, {1500, "1.5 kB"}, {999_949, "999.9 kB"}, {999_950, "1 MB"},
		{50_000_000, "50 MB"}, {500_000_000, "500 MB"}, {1_234_567_890, "1.2 GB"}, {50 << 20, "52.4 MB"},
		{-1, "-1 B"}, {-1500, "-1.5 kB"}, {math.MaxInt64, "9.2 EB"}, {math.MinInt64, "-9.2 EB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now      time.Time
		loc      *time.Location
		day      string
		resetsAt time.Time
	}{
		{time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), time.UTC, "2026-03-10", time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 10, 23, 30, 0, 0, time.UTC), paris, "2026-03-11", time.Date(2026, 3, 11, 23, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC), paris, "2026-03-29", time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC)}, // DST starts
		{time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), nil, "2026-03-10", time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		day, resets := Window(tt.now, tt.loc)
		if day != tt.day || !resets.Equal(tt.resetsAt) {
			t.Errorf("Window(%v, %v) = %s, %v; want %s, %v", tt.now, tt.loc, day, resets.UTC(), tt.day, tt.resetsAt)
		}
	}
}

func TestResolve(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	ptr := func(n int64) *int64 { return &n }
	minute := 5 * time.Minute
	tests := []struct {
		name    string
		spec    Spec
		want    Quota
		wantErr bool
	}{
		{"defaults", Spec{}, Quota{Key: "ns/q", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, RefreshCooldown: time.Minute, Location: time.UTC}, false},
		{"all set", Spec{DailyLimit: ptr(10), MaxFileSize: ptr(5), RefreshCooldown: &minute, TimeZone: "Europe/Paris"},
			Quota{Key: "ns/q", DailyLimit: 10, MaxFileSize: 5, RefreshCooldown: minute, Location: paris}, false},
		{"bad time zone", Spec{TimeZone: "Mars/Olympus"},
			Quota{Key: "ns/q", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, RefreshCooldown: time.Minute, Location: time.UTC}, true},
	}
	for _, tt := range tests {
		got, err := Resolve("ns/q", tt.spec)
		var tze *TimeZoneError
		if tt.wantErr != errors.As(err, &tze) {
			t.Errorf("%s: err = %v, want a TimeZoneError: %v", tt.name, err, tt.wantErr)
		}
		if got.Key != tt.want.Key || got.DailyLimit != tt.want.DailyLimit || got.MaxFileSize != tt.want.MaxFileSize ||
			got.RefreshCooldown != tt.want.RefreshCooldown || got.Location.String() != tt.want.Location.String() {
			t.Errorf("%s: Resolve = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// The API's default strings (and the CRD markers that spell them) mean this package's
// defaults.
func TestDefaultsMatchTheAPI(t *testing.T) {
	tests := []struct {
		api  string
		want int64
	}{
		{v1.DefaultDailyLimit, DefaultDailyLimit},
		{v1.DefaultMaxFileSize, DefaultMaxFileSize},
	}
	for _, tt := range tests {
		if q := resource.MustParse(tt.api); q.Value() != tt.want {
			t.Errorf("api default %s = %d bytes, want %d", tt.api, q.Value(), tt.want)
		}
	}
	if d, err := time.ParseDuration(v1.DefaultRefreshCooldown); err != nil || d != DefaultRefreshCooldown {
		t.Errorf("api default refresh cooldown %s = %v, %v; want %v", v1.DefaultRefreshCooldown, d, err, DefaultRefreshCooldown)
	}
	if v1.DefaultTimeZone != DefaultTimeZone {
		t.Errorf("api default time zone %s, want %s", v1.DefaultTimeZone, DefaultTimeZone)
	}
}
