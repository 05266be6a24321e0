// Command data-import is the customer-side companion of the operator. Its validate
// subcommand lints conversation files with exactly the operator's readers, limits and
// rules, so a file that passes here is ingested as it is:
//
//	data-import validate [--output text|json] [--policy SkipFile|SkipRecord] [--agents a,b] [--quiet] FILE|DIR|- ...
//
// The get, list and files subcommands read the operator's store (its --store DSN), one
// namespace at a time (-n/--namespace, "default" when not given, as with kubectl):
//
//	data-import get   --store DSN [-n NAMESPACE] --agent A --conversation C
//	data-import list  --store DSN [-n NAMESPACE] --agent A [--limit N]
//	data-import files --store DSN [-n NAMESPACE] --source NAME [--state failed] [--limit N]
//
// Exit status: 0 when every file is valid (unsupported files are reported as ignored and
// do not fail the run), 1 when any file is invalid or unreadable (or, for the lookups, the
// store cannot be read or the conversation is not stored), 2 on a usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) int
}

// env is the process's streams, injected so tests run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

const (
	exitOK      = 0
	exitInvalid = 1
	exitUsage   = 2
)

func commands() []command {
	return []command{
		{name: "validate", summary: "check JSON/JSONL/ZIP/TAR.GZ conversation files as the operator would", run: runValidate},
		{name: "get", summary: "print one stored conversation by agent_id and conversation_id", run: getCommand().run},
		{name: "list", summary: "list an agent's stored conversations", run: listCommand().run},
		{name: "files", summary: "list an S3Source's files: state, reason, record counts, message", run: filesCommand().run},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "data-import: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: data-import <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'data-import <command> -h' for a command's flags.")
}

// splitList parses a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
