package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// validateFlags are validate's settings.
type validateFlags struct {
	output string
	policy string
	agents string
	name   string
	quiet  bool
	// validators and regexes are --validators and the repeated --regex.
	validators string
	regexes    []string
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// report is the --output json document.
type report struct {
	Valid bool            `json:"valid"`
	Files []ingest.Result `json:"files"`
	// Errors are files that could not be read at all.
	Errors []string `json:"errors,omitempty"`
}

func runValidate(ctx context.Context, e *env, args []string) int {
	var f validateFlags
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&f.output, "output", "text", "output format: text or json")
	fs.StringVar(&f.policy, "policy", string(ingest.SkipFile), "invalid record policy: SkipFile or SkipRecord")
	fs.StringVar(&f.agents, "agents", "", "comma-separated agent_id allow-list (empty: any agent)")
	fs.StringVar(&f.name, "name", "", "file name for stdin (its extension picks the format); default: sniffed")
	fs.BoolVar(&f.quiet, "quiet", false, "do not list the (agent_id, conversation_id) pairs")
	fs.StringVar(&f.validators, "validators", "", "PII validators as the operator runs them, comma-separated TYPE:ACTION[:REGIONS] items:\n"+
		"TYPE email, phone, card; ACTION reject, redact, flag; REGIONS for phone, e.g. US+DE\n"+
		"(e.g. email:reject,phone:redact:US,card:flag)")
	fs.Var((*stringList)(&f.regexes), "regex", "a Regex validator NAME:ACTION:PATTERN (repeatable; the pattern may hold ':' and ','),\n"+
		"e.g. employee-id:reject:\\bEMP-[0-9]{6}\\b")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: data-import validate [flags] FILE|DIR|- ...")
		fmt.Fprintln(e.stderr, "Validates files with the operator's readers, limits and rules (nothing is written).")
		fs.PrintDefaults()
	}
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(paths) == 0 || (f.output != "text" && f.output != "json") ||
		(f.policy != string(ingest.SkipFile) && f.policy != string(ingest.SkipRecord)) {
		fs.Usage()
		return exitUsage
	}
	opts := ingest.Options{DryRun: true, Policy: ingest.InvalidRecordPolicy(f.policy)}
	cfgs, err := parseValidators(f.validators, f.regexes)
	if err == nil {
		opts.Validators, err = ingest.CompileValidators(cfgs)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "data-import validate: %v\n", err)
		return exitUsage
	}
	if list := splitList(f.agents); len(list) > 0 {
		opts.Agents = map[string]struct{}{}
		for _, a := range list {
			opts.Agents[a] = struct{}{}
		}
	}
	v := &validator{ctx: ctx, env: e, flags: f, opts: opts, engine: ingest.New(nil), rep: report{Valid: true}}
	for _, p := range paths {
		if err := v.path(p); err != nil {
			return exitUsage
		}
	}
	if f.output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v.rep); err != nil {
			fmt.Fprintf(e.stderr, "data-import: %v\n", err)
			return exitUsage
		}
	}
	if !v.rep.Valid {
		return exitInvalid
	}
	return exitOK
}

// parseInterleaved lets flags come after file arguments too (validate a.json --output json).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

type validator struct {
	ctx    context.Context
	env    *env
	flags  validateFlags
	opts   ingest.Options
	engine *ingest.Engine
	rep    report
}

// path validates a file, every file under a directory, or stdin ("-").
func (v *validator) path(p string) error {
	if p == "-" {
		return v.stdin()
	}
	info, err := os.Stat(p)
	if err != nil {
		v.unreadable(p, err)
		return nil
	}
	if !info.IsDir() {
		v.file(p)
		return nil
	}
	return filepath.WalkDir(p, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			v.unreadable(name, err)
			return nil
		}
		if d.Type().IsRegular() {
			v.file(name)
		}
		return nil
	})
}

func (v *validator) file(name string) {
	f, err := os.Open(name)
	if err != nil {
		v.unreadable(name, err)
		return
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		v.unreadable(name, err)
		return
	}
	v.process(ingest.ObjectRef{Key: filepath.ToSlash(name), Size: info.Size(), LastModified: info.ModTime()}, f)
}

func (v *validator) stdin() error {
	br := bufio.NewReader(v.env.stdin)
	name := v.flags.name
	if name == "" {
		head, _ := br.Peek(512)
		name = "stdin" + sniffExt(head)
	}
	v.process(ingest.ObjectRef{Key: name}, br)
	return nil
}

// sniffExt picks a format for unnamed stdin from its first bytes.
func sniffExt(head []byte) string {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return ".tar.gz"
	case len(head) >= 2 && head[0] == 'P' && head[1] == 'K':
		return ".zip"
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		return ".json"
	}
	return ".jsonl"
}

func (v *validator) unreadable(name string, err error) {
	v.rep.Valid = false
	msg := fmt.Sprintf("%s: %v", name, err)
	v.rep.Errors = append(v.rep.Errors, msg)
	if v.flags.output == "text" {
		fmt.Fprintf(v.env.stdout, "%-7s %s\n", "ERROR", msg)
	}
}

func (v *validator) process(ref ingest.ObjectRef, r io.Reader) {
	res, err := v.engine.Process(v.ctx, ref, r, v.opts)
	if err != nil {
		v.unreadable(ref.Key, err)
		return
	}
	if res.State == store.FileFailed {
		v.rep.Valid = false
	}
	v.rep.Files = append(v.rep.Files, res)
	if v.flags.output == "text" {
		printResult(v.env.stdout, &res, v.flags.quiet)
	}
}

// printResult writes one verdict line per file, then its errors, ignored entries and pairs.
func printResult(w io.Writer, res *ingest.Result, quiet bool) {
	verdict := map[store.FileState]string{store.FileIngested: "ok", store.FileFailed: "FAIL", store.FileIgnored: "ignored"}[res.State]
	fmt.Fprintf(w, "%-7s %s [%s]\n", verdict, res.Message, res.Reason)
	if res.State == store.FileIgnored {
		return
	}
	c := res.Counts
	fmt.Fprintf(w, "        records: %d valid, %d invalid, %d duplicates in the file\n", c.Valid, c.Invalid, c.Unchanged)
	for _, e := range res.Errors {
		fmt.Fprintf(w, "        %s\n", e.Error())
	}
	if res.MoreErrors > 0 {
		fmt.Fprintf(w, "        ... and %d more errors\n", res.MoreErrors)
	}
	for _, c := range res.PII {
		fmt.Fprintf(w, "        pii: validator %s (%s, action %s): %d match(es) in %d record(s)\n", c.Validator, c.Type, c.Action, c.Matches, c.Records)
	}
	for _, f := range res.PIIFindings {
		fmt.Fprintf(w, "        %s\n", f.Error())
	}
	if res.MorePIIFindings > 0 {
		fmt.Fprintf(w, "        ... and %d more PII findings\n", res.MorePIIFindings)
	}
	for _, ig := range res.Ignored {
		fmt.Fprintf(w, "        ignored entry %s\n", ig)
	}
	if quiet {
		return
	}
	for _, p := range res.Pairs {
		fmt.Fprintf(w, "        would write agent_id=%q conversation_id=%q\n", p.AgentID, p.ConversationID)
	}
}

// validatorTypes are the --validators type names (the CRD's names work too).
var validatorTypes = map[string]ingest.PIIType{
	"email": ingest.PIIEmail, "phone": ingest.PIIPhone, "phonenumber": ingest.PIIPhone,
	"card": ingest.PIICard, "paymentcard": ingest.PIICard,
}

var validatorActions = map[string]ingest.PIIAction{"reject": ingest.ActionReject, "redact": ingest.ActionRedact, "flag": ingest.ActionFlag}

// parseValidators reads --validators (TYPE:ACTION[:REGIONS], comma-separated) and each
// --regex (NAME:ACTION:PATTERN) into the configuration an S3Source's spec.validators
// maps to, in that order.
func parseValidators(list string, regexes []string) ([]ingest.ValidatorConfig, error) {
	var out []ingest.ValidatorConfig
	action := func(item, a string) (ingest.PIIAction, error) {
		act, ok := validatorActions[strings.ToLower(a)]
		if !ok {
			return "", fmt.Errorf("%q: action %q (want reject, redact or flag)", item, a)
		}
		return act, nil
	}
	for _, item := range splitList(list) {
		parts := strings.Split(item, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("--validators item %q: want TYPE:ACTION[:REGIONS]", item)
		}
		typ, ok := validatorTypes[strings.ToLower(parts[0])]
		if !ok {
			return nil, fmt.Errorf("--validators item %q: type %q (want email, phone or card; use --regex for a pattern)", item, parts[0])
		}
		act, err := action(item, parts[1])
		if err != nil {
			return nil, fmt.Errorf("--validators item %w", err)
		}
		cfg := ingest.ValidatorConfig{Type: typ, Action: act}
		if len(parts) == 3 {
			cfg.Regions = strings.Split(parts[2], "+")
		}
		out = append(out, cfg)
	}
	for _, item := range regexes {
		name, rest, ok1 := strings.Cut(item, ":")
		a, pattern, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("--regex %q: want NAME:ACTION:PATTERN", item)
		}
		act, err := action(item, a)
		if err != nil {
			return nil, fmt.Errorf("--regex %w", err)
		}
		out = append(out, ingest.ValidatorConfig{Name: name, Type: ingest.PIIRegex, Action: act, Pattern: pattern})
	}
	return out, nil
}
