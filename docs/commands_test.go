// Package docs_test checks that the commands README.md and docs/*.md tell a newcomer to
// run still exist: `make` targets in the Makefile, data-import subcommands and their flags
// in the CLI, manager flags in the manager, and the repository paths they name (kubectl -k
// config/..., helm install ... charts/...). make check-docs runs it, as does make test.
package docs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// command is one command a document shows, with where it is.
type command struct {
	kind string // make, cli, manager, path
	name string // the target, the subcommand, or "" for the manager
	// flags are the flags given, without dashes or values.
	flags []string
	where string
}

var (
	makeRe = regexp.MustCompile(`(?:^|[\s;&|(` + "`" + `])make\s+((?:[A-Z_]+=\S*\s+)*)([a-z][a-z0-9_-]*)`)
	// data-import at the start of a command: a line, a code span, after a pipe or &&, or
	// as bin/data-import, ./cmd/data-import. Not "helm install data-import charts/...".
	cliRe = regexp.MustCompile(`(?:^|[|;&]\s*|\$\s+|\bbin/|\./cmd/)data-import\s+([a-z][a-z-]*)(.*)`)
	// The manager run by hand, or its args in a Deployment.
	managerRe     = regexp.MustCompile(`(?:\bbin/manager|go run \./cmd(?:/)?(?:\s|$)|^\s*/manager\s)(.*)`)
	managerArgRe  = regexp.MustCompile(`^\s*-\s+--([a-z][a-z0-9-]*)(?:[=\s]|$)`)
	flagRe        = regexp.MustCompile(`(?:^|\s)--?([a-zA-Z][a-zA-Z0-9-]*)`)
	inlineCodeRe  = regexp.MustCompile("`([^`]+)`")
	targetRe      = regexp.MustCompile(`(?m)^([a-zA-Z0-9_-]+):`)
	helpFlagRe    = regexp.MustCompile(`(?m)^\s+--?([a-zA-Z0-9-]+)`)
	tableTargetRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	// A path of this repository a command names (kubectl -k config/..., helm ... charts/...).
	pathRe = regexp.MustCompile(`(?:^|[\s=(])(?:\./)?((?:config|charts|hack|docs|cmd|api|internal|controllers)/[A-Za-z0-9_./-]*)`)
)

// extract finds the commands of one Markdown document: in fenced code blocks and in inline
// code spans, and the targets listed in a table whose header names "Targets".
func extract(name, text string) []command {
	var out []command
	inBlock, targetsTable := false, false
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("%s:%d", name, i+1)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inBlock = !inBlock
			continue
		}
		var snippets []string
		if inBlock {
			snippets = []string{line}
		} else {
			for _, m := range inlineCodeRe.FindAllStringSubmatch(line, -1) {
				snippets = append(snippets, m[1])
			}
		}
		if strings.HasPrefix(trimmed, "|") {
			if strings.Contains(trimmed, "Targets") {
				targetsTable = true
			} else if targetsTable {
				cells := strings.Split(strings.Trim(trimmed, "|"), "|")
				if len(cells) >= 2 {
					for _, m := range inlineCodeRe.FindAllStringSubmatch(cells[1], -1) {
						if tableTargetRe.MatchString(m[1]) {
							out = append(out, command{kind: "make", name: m[1], where: where})
						}
					}
				}
			}
		} else {
			targetsTable = false
		}
		for _, s := range snippets {
			out = append(out, extractSnippet(s, where)...)
		}
	}
	return out
}

func extractSnippet(s, where string) []command {
	var out []command
	for _, m := range pathRe.FindAllStringSubmatch(s, -1) {
		name := strings.TrimRight(m[1], ".,:;")
		// internal/bucket.EndpointPolicy names a Go identifier of the package internal/bucket.
		if i := strings.LastIndex(name, "."); i > strings.LastIndex(name, "/") && i+1 < len(name) && unicode.IsUpper(rune(name[i+1])) {
			name = name[:i]
		}
		out = append(out, command{kind: "path", name: name, where: where})
	}
	for _, m := range makeRe.FindAllStringSubmatch(s, -1) {
		out = append(out, command{kind: "make", name: m[2], where: where})
	}
	for _, m := range cliRe.FindAllStringSubmatch(s, -1) {
		out = append(out, command{kind: "cli", name: m[1], flags: flagsOf(m[2]), where: where})
	}
	if m := managerRe.FindStringSubmatch(s); m != nil && len(flagsOf(m[1])) > 0 {
		out = append(out, command{kind: "manager", flags: flagsOf(m[1]), where: where})
	}
	if m := managerArgRe.FindStringSubmatch(s); m != nil {
		out = append(out, command{kind: "manager", flags: []string{m[1]}, where: where})
	}
	return out
}

// flagsOf returns the flags of one command line: up to a comment, pipe, ; or &&.
func flagsOf(rest string) []string {
	if i := strings.IndexAny(rest, "#|;&"); i >= 0 {
		rest = rest[:i]
	}
	var flags []string
	for _, m := range flagRe.FindAllStringSubmatch(rest, -1) {
		flags = append(flags, m[1])
	}
	return flags
}

func TestExtract(t *testing.T) {
	doc := strings.Join([]string{
		"Run `make test` or `make demo DEMO_ONCE=1`; then `make -C x`; see `internal/bucket.EndpointPolicy`.",
		"```sh",
		"make build && bin/data-import validate --output json file.json   # --not-a-flag",
		"go run ./cmd/data-import files --store sqlite:///s.db -n team-a --source x | head",
		"helm install data-import charts/data-import-operator -n data-import-system -f ./charts/x/ci/v.yaml.",
		"kubectl -n data-import-system get pods",
		"bin/manager --leader-elect --metrics-bind-address=:8443",
		"        - --max-daily-limit=10G",
		"```",
		"| Section | Targets |",
		"| --- | --- |",
		"| Build | `build` (`bin/manager`), `docker-build` (`IMG=...`) |",
		"",
		"| Not | targets |",
		"| x | `nope` |",
	}, "\n")
	got := extract("doc.md", doc)
	var summary []string
	for _, c := range got {
		summary = append(summary, c.kind+":"+c.name+":"+strings.Join(c.flags, ","))
	}
	want := []string{
		"make:test:", "make:demo:", "path:internal/bucket:", "make:build:",
		"cli:validate:output", "path:cmd/data-import:", "cli:files:store,n,source",
		"path:charts/data-import-operator:", "path:charts/x/ci/v.yaml:",
		"manager::leader-elect,metrics-bind-address", "manager::max-daily-limit",
		"make:build:", "make:docker-build:",
	}
	if !slices.Equal(summary, want) {
		t.Errorf("extract =\n%q\nwant\n%q", summary, want)
	}
}

// What exists: the Makefile's targets, the CLI's subcommands and flags, the manager's flags.
type known struct {
	targets map[string]bool
	cli     map[string]map[string]bool // subcommand -> flags
	manager map[string]bool
}

var (
	knownOnce sync.Once
	knownVal  known
	knownErr  error
)

func buildKnown(t *testing.T) known {
	t.Helper()
	knownOnce.Do(func() { knownVal, knownErr = readKnown() })
	if knownErr != nil {
		t.Fatal(knownErr)
	}
	return knownVal
}

func readKnown() (known, error) {
	root, err := testsupport.RepoRoot()
	if err != nil {
		return known{}, err
	}
	k := known{targets: map[string]bool{}, cli: map[string]map[string]bool{}, manager: map[string]bool{}}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return known{}, fmt.Errorf("reading the Makefile: %w", err)
	}
	for _, m := range targetRe.FindAllStringSubmatch(string(mk), -1) {
		k.targets[m[1]] = true
	}
	dir, err := os.MkdirTemp("", "check-docs-")
	if err != nil {
		return known{}, err
	}
	defer os.RemoveAll(dir)
	for _, pkg := range []string{"./cmd", "./cmd/data-import"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return known{}, fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}
	help := func(bin string, args ...string) string {
		// -h prints the flags to stderr and may exit non-zero; the text is what matters.
		var out bytes.Buffer
		cmd := exec.Command(filepath.Join(dir, bin), args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run()
		return out.String()
	}
	for _, m := range helpFlagRe.FindAllStringSubmatch(help("cmd", "-h"), -1) {
		k.manager[m[1]] = true
	}
	if !k.manager["leader-elect"] {
		return known{}, errors.New("could not read the manager's flags from -h")
	}
	// The usage lists each subcommand as "  name  summary".
	usage := help("data-import", "help")
	for _, line := range strings.Split(usage, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(line, "  ") || strings.HasPrefix(fields[0], "-") {
			continue
		}
		sub := fields[0]
		flags := map[string]bool{"h": true, "help": true}
		for _, m := range helpFlagRe.FindAllStringSubmatch(help("data-import", sub, "-h"), -1) {
			flags[m[1]] = true
		}
		if len(flags) > 2 {
			k.cli[sub] = flags
		}
	}
	if len(k.cli) == 0 {
		return known{}, fmt.Errorf("could not read the data-import subcommands from its usage:\n%s", usage)
	}
	return k, nil
}

// Every command README.md, docs/*.md and the charts' READMEs show exists.
func TestDocCommandsExist(t *testing.T) {
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	k := buildKnown(t)
	seen := 0
	charts, err := filepath.Glob(filepath.Join(root, "charts", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, charts...)
	for _, path := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		rel, _ := filepath.Rel(root, path)
		if rel == filepath.Join("docs", "api.md") {
			continue // generated from the Go types
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range extract(rel, string(text)) {
			seen++
			switch c.kind {
			case "make":
				if !k.targets[c.name] {
					t.Errorf("%s: `make %s`: the Makefile has no target %s", c.where, c.name, c.name)
				}
			case "cli":
				flags, ok := k.cli[c.name]
				if !ok {
					t.Errorf("%s: `data-import %s`: the CLI has no subcommand %s", c.where, c.name, c.name)
					continue
				}
				for _, f := range c.flags {
					if !flags[f] {
						t.Errorf("%s: `data-import %s --%s`: the subcommand has no flag %s", c.where, c.name, f, f)
					}
				}
			case "path":
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(c.name))); err != nil {
					t.Errorf("%s: %s does not exist", c.where, c.name)
				}
			case "manager":
				for _, f := range c.flags {
					if !k.manager[f] {
						t.Errorf("%s: the manager has no flag --%s", c.where, f)
					}
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("found only %d commands in README.md and docs/: is the extraction broken?", seen)
	}
}
