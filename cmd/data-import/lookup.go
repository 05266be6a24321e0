package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/backend"
)

// The store lookups read what the operator wrote: the same DSN as its --store flag.
// SQLite runs in WAL mode, so they read a consistent snapshot while the operator writes.

// lookupCmd is one store lookup: its flags, and what it does with the open store.
type lookupCmd struct {
	name, usage, about string
	// bind registers the command's own flags; check says what is missing or wrong.
	bind  func(fs *flag.FlagSet)
	check func() string
	do    func(ctx context.Context, st store.Store, e *env, q query) int
}

// query is what every lookup is given besides its own flags.
type query struct {
	// namespace is the tenant whose data is read: every lookup stays inside one.
	namespace string
	output    string
}

// defaultNamespace is where lookups read without -n, as kubectl does.
const defaultNamespace = "default"

// run parses flags, opens the store and runs the lookup. A store that cannot be opened
// exits 1, like a lookup that finds nothing; bad flags exit 2.
func (c *lookupCmd) run(ctx context.Context, e *env, args []string) int {
	var dsn string
	q := query{namespace: defaultNamespace}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&dsn, "store", "", "store DSN, as the operator's --store: sqlite:///path/store.db or postgres://user@host/db")
	fs.StringVar(&q.output, "output", "text", "output format: text or json")
	// -n and --namespace are one flag, as in kubectl.
	fs.StringVar(&q.namespace, "namespace", defaultNamespace, "the namespace whose data is read (the S3Sources' namespace)")
	fs.StringVar(&q.namespace, "n", defaultNamespace, "shorthand for --namespace")
	c.bind(fs)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: data-import %s %s\n%s\n", c.name, c.usage, c.about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	problem := c.check()
	switch {
	case dsn == "":
		problem = "--store is required"
	case q.output != "text" && q.output != "json":
		problem = fmt.Sprintf("--output %q: want text or json", q.output)
	case len(validation.IsDNS1123Label(q.namespace)) > 0:
		problem = fmt.Sprintf("--namespace %q: want a Kubernetes namespace name, e.g. default", q.namespace)
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	}
	if problem != "" {
		fmt.Fprintf(e.stderr, "data-import %s: %s\n", c.name, problem)
		fs.Usage()
		return exitUsage
	}
	st, err := backend.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintf(e.stderr, "data-import %s: %v\n", c.name, err)
		return exitInvalid
	}
	defer func() { _ = st.Close() }()
	return c.do(ctx, st, e, q)
}

func getCommand() *lookupCmd {
	var agent, conv string
	return &lookupCmd{
		name: "get", usage: "--store DSN [-n NAMESPACE] --agent AGENT_ID --conversation CONVERSATION_ID",
		about: "Prints one stored conversation of a namespace as JSON, exactly as it was imported (exit 1 when it is not stored).",
		bind: func(fs *flag.FlagSet) {
			fs.StringVar(&agent, "agent", "", "agent_id of the conversation")
			fs.StringVar(&conv, "conversation", "", "conversation_id of the conversation")
		},
		check: func() string {
			if agent == "" || conv == "" {
				return "--agent and --conversation are required"
			}
			return ""
		},
		do: func(ctx context.Context, st store.Store, e *env, q query) int {
			c, ok, err := st.GetConversation(ctx, q.namespace, agent, conv)
			if err != nil {
				fmt.Fprintf(e.stderr, "data-import get: %v\n", err)
				return exitInvalid
			}
			if !ok {
				fmt.Fprintf(e.stderr, "data-import get: no conversation agent_id=%q conversation_id=%q in namespace %q\n", agent, conv, q.namespace)
				return exitInvalid
			}
			if q.output == "json" {
				return writeJSON(e, "get", conversationView(&c, true))
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, c.Raw, "", "  "); err != nil {
				// The store holds compacted JSON the engine parsed; print it as it is if not.
				buf.Reset()
				buf.Write(c.Raw)
			}
			buf.WriteByte('\n')
			_, _ = e.stdout.Write(buf.Bytes())
			return exitOK
		},
	}
}

func listCommand() *lookupCmd {
	var agent string
	var limit int
	return &lookupCmd{
		name: "list", usage: "--store DSN [-n NAMESPACE] --agent AGENT_ID [--limit N]",
		about: "Lists an agent's stored conversations in a namespace by conversation_id, with where each came from.",
		bind: func(fs *flag.FlagSet) {
			fs.StringVar(&agent, "agent", "", "agent_id whose conversations to list")
			fs.IntVar(&limit, "limit", 100, "most conversations listed; 0 means all")
		},
		check: func() string {
			if agent == "" {
				return "--agent is required"
			}
			if limit < 0 {
				return "--limit must not be negative"
			}
			return ""
		},
		do: func(ctx context.Context, st store.Store, e *env, q query) int {
			cs, err := st.ListConversations(ctx, q.namespace, agent, limit)
			return render(e, "list", q.output, cs, err, func(c *store.Conversation) any { return conversationView(c, false) }, func() {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CONVERSATION_ID\tLATEST_ACTIVITY\tSOURCE\tOBJECT")
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ConversationID, c.ActivityTime.UTC().Format(time.RFC3339), c.Source, c.ObjectKey)
				}
				_ = tw.Flush()
				if len(cs) == 0 {
					fmt.Fprintf(e.stderr, "no conversations for agent_id %q in namespace %q\n", agent, q.namespace)
				}
			})
		},
	}
}

func filesCommand() *lookupCmd {
	var source, state string
	var limit int
	return &lookupCmd{
		name: "files", usage: "--store DSN [-n NAMESPACE] --source NAME [--state ingested|failed|deferred|ignored] [--limit N]",
		about: "Lists the file ledger of an S3Source, most recently processed first: state, reason, record counts, message.",
		bind: func(fs *flag.FlagSet) {
			fs.StringVar(&source, "source", "", "the S3Source's name, in the namespace -n names")
			fs.StringVar(&state, "state", "", "only files in this state: ingested, failed, deferred or ignored")
			fs.IntVar(&limit, "limit", 0, "most files listed; 0 means all")
		},
		check: func() string {
			switch {
			case source == "":
				return "--source is required"
			case strings.Contains(source, "/"):
				return fmt.Sprintf("--source %q: want the S3Source's name; its namespace is -n/--namespace", source)
			}
			switch store.FileState(state) {
			case "", store.FileIngested, store.FileFailed, store.FileDeferred, store.FileIgnored:
			default:
				return fmt.Sprintf("--state %q: want ingested, failed, deferred or ignored", state)
			}
			if limit < 0 {
				return "--limit must not be negative"
			}
			return ""
		},
		do: func(ctx context.Context, st store.Store, e *env, q query) int {
			// The ledger is keyed by the S3Source's "namespace/name".
			fs, err := st.ListFiles(ctx, q.namespace+"/"+source, store.FileState(state), limit)
			return render(e, "files", q.output, fs, err, func(f *store.FileRecord) any { return fileView(f) }, func() {
				printFiles(e.stdout, fs)
				if len(fs) == 0 {
					fmt.Fprintf(e.stderr, "no files recorded for S3Source %q in namespace %q (has it run? is -n right?)\n", source, q.namespace)
				}
			})
		},
	}
}

// render prints a lookup's rows: as JSON through view, or with text.
func render[T any](e *env, cmd, output string, rows []T, err error, view func(*T) any, text func()) int {
	if err != nil {
		fmt.Fprintf(e.stderr, "data-import %s: %v\n", cmd, err)
		return exitInvalid
	}
	if output == "json" {
		views := make([]any, len(rows))
		for i := range rows {
			views[i] = view(&rows[i])
		}
		return writeJSON(e, cmd, views)
	}
	text()
	return exitOK
}

func printFiles(w io.Writer, fs []store.FileRecord) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATE\tREASON\tNEW\tUPDATED\tUNCHANGED\tINVALID\tMESSAGE")
	for _, f := range fs {
		c := f.Counts
		// One row per file: a message never breaks the table.
		msg := strings.Join(strings.Fields(f.Message), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", f.Key, f.State, f.Reason, c.New, c.Updated, c.Unchanged, c.Invalid, msg)
	}
	_ = tw.Flush()
}

// conversationJSON is a stored conversation in --output json.
type conversationJSON struct {
	Namespace      string          `json:"namespace"`
	AgentID        string          `json:"agent_id"`
	ConversationID string          `json:"conversation_id"`
	ActivityTime   time.Time       `json:"activity_time"`
	Source         string          `json:"source"`
	ObjectKey      string          `json:"object_key"`
	ContentHash    string          `json:"content_hash"`
	Record         json.RawMessage `json:"record,omitempty"`
}

func conversationView(c *store.Conversation, withRecord bool) conversationJSON {
	v := conversationJSON{Namespace: c.Namespace, AgentID: c.AgentID, ConversationID: c.ConversationID, ActivityTime: c.ActivityTime.UTC(),
		Source: c.Source, ObjectKey: c.ObjectKey, ContentHash: c.ContentHash}
	if withRecord && json.Valid(c.Raw) {
		v.Record = c.Raw
	}
	return v
}

// fileJSON is a ledger row in --output json.
type fileJSON struct {
	Key       string             `json:"key"`
	State     store.FileState    `json:"state"`
	Reason    string             `json:"reason"`
	Message   string             `json:"message"`
	Size      int64              `json:"size"`
	Bytes     int64              `json:"charged_bytes"`
	Counts    store.RecordCounts `json:"counts"`
	UpdatedAt time.Time          `json:"updated_at"`
}

func fileView(f *store.FileRecord) fileJSON {
	return fileJSON{Key: f.Key, State: f.State, Reason: f.Reason, Message: f.Message, Size: f.Size, Bytes: f.Bytes,
		Counts: f.Counts, UpdatedAt: f.UpdatedAt.UTC()}
}

func writeJSON(e *env, cmd string, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(e.stderr, "data-import %s: %v\n", cmd, err)
		return exitInvalid
	}
	return exitOK
}
