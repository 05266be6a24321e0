// Package quota is the one home of what an IngestionQuota means to the operator: its
// defaults, how a spec resolves to the limits discovery enforces, the daily window
// usage is counted in, and how byte counts are shown. It knows nothing of Kubernetes:
// the controllers turn an IngestionQuota's spec into a Spec.
package quota

import (
	"fmt"
	"strconv"
	"time"
)

// Defaults for what a spec leaves out, and for a source whose IngestionQuota does not
// exist. Bytes are decimal, as the product guide says "500 MB": 500M = 500,000,000
// bytes. (The CRD's +kubebuilder:default markers and api/v1alpha1's Default* strings
// spell the same values; a test keeps them equal.)
const (
	DefaultDailyLimit      int64 = 500_000_000
	DefaultMaxFileSize     int64 = 50_000_000
	DefaultRefreshCooldown       = 60 * time.Second
	DefaultTimeZone              = "UTC"
)

// Quota is a resolved IngestionQuota: the limits of every source that uses it.
type Quota struct {
	// Key is "namespace/name"; usage is stored under it.
	Key         string
	DailyLimit  int64
	MaxFileSize int64
	// RefreshCooldown is the least time between two refreshes a user asks for.
	RefreshCooldown time.Duration
	// Location is the time zone of the daily window.
	Location *time.Location
}

// Ceilings are the platform admin's upper bounds on every quota, and on the defaults that
// apply when a source's quota does not exist (the manager's --max-daily-limit and
// --max-file-size). A tenant cannot raise them. Zero means no ceiling.
type Ceilings struct {
	DailyLimit  int64
	MaxFileSize int64
}

// Capped is a quota resolved under ceilings, with what its spec asked for.
type Capped struct {
	Quota
	// RequestedDailyLimit and RequestedMaxFileSize are what the spec (or the defaults)
	// asked for, before the ceilings.
	RequestedDailyLimit, RequestedMaxFileSize int64
	// Ceilings are the bounds that were applied.
	Ceilings Ceilings
}

// Cap bounds q by c. A file larger than a day's limit could never be ingested, so the
// effective MaxFileSize never exceeds the effective DailyLimit either.
func (q Quota) Cap(c Ceilings) Capped {
	out := Capped{Quota: q, RequestedDailyLimit: q.DailyLimit, RequestedMaxFileSize: q.MaxFileSize, Ceilings: c}
	out.DailyLimit = capAt(q.DailyLimit, c.DailyLimit)
	out.MaxFileSize = capAt(capAt(q.MaxFileSize, c.MaxFileSize), out.DailyLimit)
	return out
}

// Lowered says which limits the ceilings lowered, in words for a condition message;
// empty when the spec applies as written.
func (q Capped) Lowered() []string {
	var out []string
	if q.DailyLimit < q.RequestedDailyLimit {
		out = append(out, fmt.Sprintf("dailyLimit %s is above the operator's ceiling of %s (--max-daily-limit): %s applies",
			FormatBytes(q.RequestedDailyLimit), FormatBytes(q.Ceilings.DailyLimit), FormatBytes(q.DailyLimit)))
	}
	if q.MaxFileSize < q.RequestedMaxFileSize {
		why := fmt.Sprintf("the operator's ceiling of %s (--max-file-size)", FormatBytes(q.Ceilings.MaxFileSize))
		if q.Ceilings.MaxFileSize <= 0 || q.MaxFileSize < q.Ceilings.MaxFileSize {
			why = fmt.Sprintf("the effective daily limit of %s", FormatBytes(q.DailyLimit))
		}
		out = append(out, fmt.Sprintf("maxFileSize %s is above %s: %s applies",
			FormatBytes(q.RequestedMaxFileSize), why, FormatBytes(q.MaxFileSize)))
	}
	return out
}

// capAt returns v bounded by ceiling; a ceiling of zero or less bounds nothing.
func capAt(v, ceiling int64) int64 {
	if ceiling > 0 && v > ceiling {
		return ceiling
	}
	return v
}

// Spec is an IngestionQuota's spec in plain units; nil and "" take the defaults.
type Spec struct {
	DailyLimit      *int64
	MaxFileSize     *int64
	RefreshCooldown *time.Duration
	TimeZone        string
}

// TimeZoneError is a spec whose time zone is not an IANA time zone name: it needs a
// change of the spec, not a retry.
type TimeZoneError struct {
	Key, TimeZone string
}

func (e *TimeZoneError) Error() string {
	return fmt.Sprintf("IngestionQuota %s: timeZone %q is not an IANA time zone name (want e.g. UTC or Europe/Paris)", e.Key, e.TimeZone)
}

// Resolve fills what s leaves out with the defaults. The returned Quota is complete
// even with an error (its Location is then UTC), so callers can still describe it.
func Resolve(key string, s Spec) (Quota, error) {
	q := Quota{Key: key, DailyLimit: DefaultDailyLimit, MaxFileSize: DefaultMaxFileSize,
		RefreshCooldown: DefaultRefreshCooldown, Location: time.UTC}
	if s.DailyLimit != nil {
		q.DailyLimit = *s.DailyLimit
	}
	if s.MaxFileSize != nil {
		q.MaxFileSize = *s.MaxFileSize
	}
	if s.RefreshCooldown != nil {
		q.RefreshCooldown = *s.RefreshCooldown
	}
	tz := s.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return q, &TimeZoneError{Key: key, TimeZone: tz}
	}
	q.Location = loc
	return q, nil
}

// Window returns the quota day holding now ("2006-01-02" in loc; nil is UTC) and when
// it ends: the next local midnight, whatever daylight saving does that day.
func Window(now time.Time, loc *time.Location) (day string, resetsAt time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	local := now.In(loc)
	y, m, d := local.Date()
	return local.Format(time.DateOnly), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// Window returns q's day holding now and when it ends.
func (q Quota) Window(now time.Time) (day string, resetsAt time.Time) {
	return Window(now, q.Location)
}

// FormatBytes shows n bytes in decimal units with at most one decimal, as the product
// guide does: 500,000,000 is "500 MB", 1,500 is "1.5 kB", 999 is "999 B".
func FormatBytes(n int64) string {
	const unit = 1000
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	exp := -1
	for ; (v >= unit || v <= -unit) && exp < len(units)-1; exp++ {
		v /= unit
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if (s == "1000.0" || s == "-1000.0") && exp < len(units)-1 {
		// 999,950 rounds to 1000.0 kB: that is 1 MB.
		v /= unit
		exp++
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + units[exp]
}

var units = []string{"kB", "MB", "GB", "TB", "PB", "EB"}
