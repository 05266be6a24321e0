package ingest_test

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// The benchmark's records are shaped like the seed guide's example: 1–30 messages, each
// with logs; user_data with preferences; missing_info; a CSAT score.

type benchLog struct {
	Action       string  `json:"action"`
	Source       string  `json:"source,omitempty"`
	SessionID    string  `json:"session_id,omitempty"`
	Status       string  `json:"status,omitempty"`
	DurationMS   int     `json:"duration_ms,omitempty"`
	RecordsFound int     `json:"records_found,omitempty"`
	Confidence   float64 `json:"confidence,omitempty"`
}

type benchMessage struct {
	MessageID      string     `json:"message_id"`
	ConversationID string     `json:"conversation_id"`
	Role           string     `json:"role"`
	SenderID       string     `json:"sender_id"`
	Content        string     `json:"content"`
	Timestamp      time.Time  `json:"timestamp"`
	Logs           []benchLog `json:"logs"`
}

type benchConversation struct {
	ConversationID string    `json:"conversation_id"`
	Timestamp      time.Time `json:"timestamp"`
	AgentID        string    `json:"agent_id"`
	IsResolved     bool      `json:"is_resolved"`
	CSATScore      float64   `json:"csat_score"`
	MissingInfo    struct {
		Reason string   `json:"reason"`
		Fields []string `json:"fields"`
	} `json:"missing_info"`
	UserData struct {
		AccountType      string `json:"account_type"`
		SubscriptionTier string `json:"subscription_tier"`
		Preferences      struct {
			Language      string `json:"language"`
			Notifications bool   `json:"notifications"`
		} `json:"preferences"`
		LastActivity time.Time `json:"last_activity"`
	} `json:"user_data"`
	Messages []benchMessage `json:"messages"`
}

var sentences = []string{
	"Hello, I need help with my account billing. I see some charges I don't understand.",
	"I'd be happy to help you understand your billing charges. Let me review your account details.",
	"Thank you! That breakdown was very helpful.",
	"Could you tell me when the next invoice is due and whether the discount still applies?",
	"I have updated your preferences; you will receive a confirmation e-mail shortly.",
	"The order number is 4471-AB, placed last Tuesday — it still shows as pending.",
}

// genConversation builds conversation i deterministically.
func genConversation(i int) benchConversation {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	t := time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	var c benchConversation
	c.ConversationID = fmt.Sprintf("conv-%08d", i)
	c.Timestamp = t
	c.AgentID = fmt.Sprintf("agent-%03d", i%50)
	c.IsResolved = i%3 != 0
	c.CSATScore = float64(rng.IntN(11)) / 2
	c.MissingInfo.Reason = "customer_privacy_preference"
	c.MissingInfo.Fields = []string{"phone_number"}
	c.UserData.AccountType, c.UserData.SubscriptionTier = "premium", "professional"
	c.UserData.Preferences.Language, c.UserData.Preferences.Notifications = "en-US", true
	c.UserData.LastActivity = t.Add(-24 * time.Hour)
	for m := range 1 + rng.IntN(30) {
		role, sender := "customer", "user-001"
		if m%2 == 1 {
			role, sender = "agent", c.AgentID
		}
		c.Messages = append(c.Messages, benchMessage{
			MessageID: fmt.Sprintf("msg-%03d", m+1), ConversationID: c.ConversationID, Role: role, SenderID: sender,
			Content: sentences[rng.IntN(len(sentences))], Timestamp: t.Add(time.Duration(m*30) * time.Second),
			Logs: []benchLog{{Action: "account_lookup", Source: "web_chat", SessionID: "sess-001", Status: "success", DurationMS: rng.IntN(500), RecordsFound: 3, Confidence: 0.95}},
		})
	}
	return c
}

// genReader streams a JSON array (indented, like the seed) or JSONL of conversations
// until at least size bytes, without holding the file: the heap benchmark measures the
// engine, not its input.
type genReader struct {
	jsonl bool
	size  int64
	n     int64
	i     int
	buf   bytes.Buffer
	done  bool
}

func (g *genReader) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && !g.done {
		switch {
		case g.n >= g.size:
			if !g.jsonl {
				g.buf.WriteString("\n]\n")
			}
			g.done = true
			continue
		case g.i == 0 && !g.jsonl:
			g.buf.WriteString("[\n")
		case !g.jsonl:
			g.buf.WriteString(",\n")
		}
		var b []byte
		if g.jsonl {
			b, _ = json.Marshal(genConversation(g.i))
			b = append(b, '\n')
		} else {
			b, _ = json.MarshalIndent(genConversation(g.i), "  ", "  ")
		}
		g.buf.Write(b)
		g.n += int64(len(b))
		g.i++
	}
	n, _ := g.buf.Read(p)
	if n == 0 && g.done {
		return 0, io.EOF
	}
	return n, nil
}

func genBytes(jsonl bool, size int64) []byte {
	b, _ := io.ReadAll(&genReader{jsonl: jsonl, size: size})
	return b
}

// benchFile is one format's bytes and the plain JSON/JSONL payload inside it.
type benchFile struct {
	key     string
	data    []byte
	payload int64
	jsonl   bool
}

const benchSize = 4 << 20

var benchFiles = sync.OnceValue(func() []benchFile {
	js, jl := genBytes(false, benchSize), genBytes(true, benchSize)
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("conversations/2025/01/15/a.jsonl")
	_, _ = w.Write(jl)
	_ = zw.Close()
	var tbuf bytes.Buffer
	gz := gzip.NewWriter(&tbuf)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: "conversations/2025/01/15/a.jsonl", Mode: 0o644, Size: int64(len(jl)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(jl)
	_ = tw.Close()
	_ = gz.Close()
	return []benchFile{
		{key: "a.json", data: js, payload: int64(len(js))},
		{key: "a.jsonl", data: jl, payload: int64(len(jl)), jsonl: true},
		{key: "a.zip", data: zbuf.Bytes(), payload: int64(len(jl)), jsonl: true},
		{key: "a.tar.gz", data: tbuf.Bytes(), payload: int64(len(jl)), jsonl: true},
	}
})

// rawDecode is the baseline: encoding/json decoding the same bytes into the typed struct,
// streamed the same way (array elements, or lines), after the same decompression.
func rawDecode(f benchFile) error {
	var r io.Reader = bytes.NewReader(f.data)
	switch f.key {
	case "a.zip":
		zr, err := zip.NewReader(bytes.NewReader(f.data), int64(len(f.data)))
		if err != nil {
			return err
		}
		rc, err := zr.File[0].Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		r = rc
	case "a.tar.gz":
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		tr := tar.NewReader(gz)
		if _, err := tr.Next(); err != nil {
			return err
		}
		r = tr
	}
	if f.jsonl {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 1<<20), ingest.DefaultMaxLineBytes)
		for sc.Scan() {
			var c benchConversation
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				return err
			}
		}
		return sc.Err()
	}
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		var c benchConversation
		if err := dec.Decode(&c); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// benchValidators are all the PII validators, as a source enabling every kind would
// configure them (national phone numbers of a region included: the widest scan).
var benchValidators = sync.OnceValue(func() *ingest.Validators {
	vs, err := ingest.CompileValidators([]ingest.ValidatorConfig{
		{Type: ingest.PIIEmail, Action: ingest.ActionRedact},
		{Type: ingest.PIIPhone, Action: ingest.ActionRedact, Regions: []string{"US"}},
		{Type: ingest.PIICard, Action: ingest.ActionReject},
		{Type: ingest.PIIRegex, Name: "employee-id", Action: ingest.ActionFlag, Pattern: `\bEMP-[0-9]{6}\b`},
	})
	if err != nil {
		panic(err)
	}
	return vs
})

// BenchmarkIngest reports, per format, end-to-end MB/s into a fresh SQLite store, into a
// real PostgreSQL (benchPostgres), and the raw encoding/json typed decode of the same
// bytes. MB/s counts the JSON payload (the uncompressed bytes for archives) for all, so
// they are comparable; cpu-ms/op is the process's CPU time per iteration. The -pii
// variants run the same corpus with every PII validator on (benchValidators); compare
// validate-pii with validate, and sqlite-pii with sqlite, from one run.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	for _, f := range benchFiles() {
		b.Run(f.key+"/encoding-json", func(b *testing.B) {
			b.SetBytes(f.payload)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := rawDecode(f); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
		for _, v := range []struct {
			suffix string
			vs     *ingest.Validators
		}{{"", nil}, {"-pii", benchValidators()}} {
			b.Run(f.key+"/validate"+v.suffix, func(b *testing.B) {
				benchProcess(b, f, nil, v.vs)
			})
			b.Run(f.key+"/sqlite"+v.suffix, func(b *testing.B) {
				dir := b.TempDir()
				n := 0
				benchProcess(b, f, func() store.Store {
					n++
					st, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("s%d.db", n)))
					if err != nil {
						b.Fatal(err)
					}
					return st
				}, v.vs)
			})
			b.Run(f.key+"/postgres"+v.suffix, func(b *testing.B) {
				benchPostgres(b, f, v.vs)
			})
		}
		// A second pass into a store that already holds the file's records, so the
		// de-dup lookup and the update path are measured too: the same object again
		// (every record Unchanged, no row written) and a newer version of it with the
		// same content (every row rewritten with its new origin, counted Unchanged).
		for _, newer := range []bool{false, true} {
			name := "/sqlite-unchanged"
			if newer {
				name = "/sqlite-newer"
			}
			b.Run(f.key+name, func(b *testing.B) {
				st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "s.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				benchAgain(b, f, st, newer)
			})
		}
	}
}

// benchAgain ingests f into st once, then measures ingesting it again: the same object
// version, or with newer a later version each iteration.
func benchAgain(b *testing.B, f benchFile, st store.Store, newer bool) {
	ctx := context.Background()
	ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: f.key, Size: int64(len(f.data)),
		LastModified: time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)}
	process := func() store.RecordCounts {
		res, err := ingest.New(st).Process(ctx, ref, bytes.NewReader(f.data), ingest.Options{})
		if err != nil || res.State != store.FileIngested {
			b.Fatalf("%v %s", err, res.Message)
		}
		return res.Counts
	}
	if n := process(); n.New != n.Valid {
		b.Fatalf("first pass counts %+v", n)
	}
	b.SetBytes(f.payload)
	b.ReportAllocs()
	var records int64
	cpu := startCPU()
	for b.Loop() {
		if newer {
			ref.LastModified = ref.LastModified.Add(time.Second)
		}
		n := process()
		if n.Unchanged != n.Valid {
			b.Fatalf("counts %+v", n)
		}
		records = n.Valid
	}
	cpu.report(b)
	b.ReportMetric(float64(records), "records/op")
}

// benchProcess runs Process on f; with newStore, into a fresh store each iteration (so
// every record is new), else as a dry run.
func benchProcess(b *testing.B, f benchFile, newStore func() store.Store, vs *ingest.Validators) {
	ctx := context.Background()
	b.SetBytes(f.payload)
	b.ReportAllocs()
	var records int64
	cpu := startCPU()
	for b.Loop() {
		e := ingest.New(nil)
		opts := ingest.Options{DryRun: newStore == nil, Validators: vs}
		if newStore != nil {
			cpu.stopTimer(b)
			e.Store = newStore()
			cpu.startTimer(b)
		}
		res, err := e.Process(ctx, ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: f.key, Size: int64(len(f.data)), LastModified: time.Now()}, bytes.NewReader(f.data), opts)
		if err != nil || res.State != store.FileIngested {
			b.Fatalf("%v %s", err, res.Message)
		}
		if newStore != nil && res.Counts.New != res.Counts.Valid {
			b.Fatalf("counts %+v", res.Counts)
		}
		records = res.Counts.Valid
		if e.Store != nil {
			// Closing finishes the store's checkpoint: untimed, but its CPU counts.
			b.StopTimer()
			_ = e.Store.Close()
			b.StartTimer()
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(records), "records/op")
}

// heapPeak is what peakHeap saw, in bytes above the start.
type heapPeak struct {
	// objects is the peak of the heap's objects, live and not yet swept: what the
	// process holds, which with GOGC=100 swings up to about twice the live heap.
	objects uint64
	// live is the largest live heap a GC cycle marked while f ran: what f needed.
	live uint64
}

func (p heapPeak) max(o heapPeak) heapPeak {
	return heapPeak{objects: max(p.objects, o.objects), live: max(p.live, o.live)}
}

func (p heapPeak) report(b *testing.B) {
	b.ReportMetric(float64(p.objects)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(p.live)/(1<<20), "peak-live-MB")
}

// peakHeap samples the heap every millisecond while f runs.
func peakHeap(f func()) heapPeak {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (uint64, uint64) {
		metrics.Read(sample)
		return sample[0].Value.Uint64(), sample[1].Value.Uint64()
	}
	baseObjects, baseLive := read()
	var peakObjects, peakLive atomic.Uint64
	note := func() {
		o, l := read()
		if o > peakObjects.Load() {
			peakObjects.Store(o)
		}
		if l > peakLive.Load() {
			peakLive.Store(l)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			note()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	note()
	above := func(v, base uint64) uint64 {
		if v > base {
			return v - base
		}
		return 0
	}
	return heapPeak{objects: above(peakObjects.Load(), baseObjects), live: above(peakLive.Load(), baseLive)}
}

// BenchmarkHeap shows the reader's memory does not grow with the file: a 5 MB and a 50 MB
// JSON array (streamed from a generator, so the input itself is not on the heap) are
// validated (dry run) and the peak heap above the start is reported (see heapPeak).
func BenchmarkHeap(b *testing.B) {
	// Decimal megabytes: 50 MB is the default file limit, which a file may reach.
	for _, size := range []int64{5e6, 50e6} {
		b.Run(fmt.Sprintf("json-%dMB/validate", size/1e6), func(b *testing.B) {
			var peak heapPeak
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				peak = peak.max(peakHeap(func() {
					res, err := ingest.New(nil).Process(context.Background(), ingest.ObjectRef{Key: "big.json"}, &genReader{size: size}, ingest.Options{DryRun: true})
					if err != nil || res.State != store.FileIngested {
						b.Fatalf("%v %s", err, res.Message)
					}
				}))
			}
			peak.report(b)
		})
	}
}

// BenchmarkHeapEndToEnd is BenchmarkHeap through a commit into a fresh SQLite store: the
// records are streamed into the transaction, so the peak live heap stays that of a few
// batches whatever the file's size. (SQLite's own page cache is not on the Go heap.)
func BenchmarkHeapEndToEnd(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int64{5e6, 20e6, 50e6} {
		b.Run(fmt.Sprintf("json-%dMB/sqlite", size/1e6), func(b *testing.B) {
			dir := b.TempDir()
			var peak heapPeak
			var records int64
			b.SetBytes(size)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				b.StopTimer()
				n++
				st, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("s%d.db", n)))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				peak = peak.max(peakHeap(func() {
					res, err := ingest.New(st).Process(ctx, ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "big.json", LastModified: time.Now()}, &genReader{size: size}, ingest.Options{})
					if err != nil || res.State != store.FileIngested || res.Counts.New != res.Counts.Valid {
						b.Fatalf("%v %s %+v", err, res.Message, res.Counts)
					}
					records = res.Counts.New
				}))
				b.StopTimer()
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			peak.report(b)
			b.ReportMetric(float64(records), "records/op")
		})
	}
}

// TestBenchCorpusHasNoPII: the benchmark's corpus (the seed's shape, sentences with an
// order number) matches no validator, so validators-on measures scanning, not redacting.
func TestBenchCorpusHasNoPII(t *testing.T) {
	opts := ingest.Options{DryRun: true, Validators: benchValidators()}
	res, err := ingest.New(nil).Process(context.Background(), ingest.ObjectRef{Key: "a.jsonl"}, bytes.NewReader(genBytes(true, 1<<20)), opts)
	if err != nil || res.State != store.FileIngested || len(res.PII) != 0 {
		t.Fatalf("%v %s: PII %+v", err, res.Message, res.PII)
	}
}
