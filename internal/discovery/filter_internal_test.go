package discovery

import (
	"strings"
	"testing"
)

func TestFilterSelects(t *testing.T) {
	tests := []struct {
		name    string
		filter  Filter
		selects map[string]bool
	}{
		{"no filter keeps everything", Filter{}, map[string]bool{"a.json": true, "2026/03/10/x.csv": true}},
		{"** spans folders and matches none", Filter{Include: []string{"**/*.json"}}, map[string]bool{
			"a.json": true, "2026/03/10/a.json": true, "2026/03/10/a.jsonl": false, "a.json/b.zip": false,
		}},
		{"* stays in one folder", Filter{Include: []string{"*.json"}}, map[string]bool{"a.json": true, "2026/a.json": false}},
		{"alternatives and classes", Filter{Include: []string{"2026/0[1-3]/**/*.{json,jsonl}"}}, map[string]bool{
			"2026/03/10/a.jsonl": true, "2026/04/10/a.json": false, "2026/01/a.json": true, "2026/02/10/a.zip": false,
		}},
		{"exclude after include", Filter{Include: []string{"**"}, Exclude: []string{"**/tmp/**", "**/*.partial"}}, map[string]bool{
			"2026/03/10/a.json": true, "2026/tmp/a.json": false, "tmp/a.json": false, "2026/a.json.partial": false,
		}},
		{"exclude only", Filter{Exclude: []string{"archive/**"}}, map[string]bool{"archive/2020/a.json": false, "2026/a.json": true, "archived.json": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for key, want := range tc.selects {
				if got := tc.filter.selects(key); got != want {
					t.Errorf("selects(%q) = %v, want %v", key, got, want)
				}
			}
		})
	}
}

func TestValidatePatterns(t *testing.T) {
	if err := ValidatePatterns("spec.include", []string{"**/*.json", "2026/{01,02}/*", "[a-z]*", `a\*b`}); err != nil {
		t.Fatalf("valid patterns refused: %v", err)
	}
	tests := []struct {
		patterns []string
		want     string
	}{
		{[]string{"**/*.json", "[a-z"}, `spec.include[1] "[a-z" is not a valid glob pattern`},
		{[]string{"{a,b"}, `spec.include[0] "{a,b" is not a valid glob pattern`},
		{[]string{`a\`}, `spec.include[0] "a\\" is not a valid glob pattern`},
		{[]string{""}, `spec.include[0] "" is not a valid glob pattern`},
	}
	for _, tc := range tests {
		err := ValidatePatterns("spec.include", tc.patterns)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidatePatterns(%q) = %v, want an error containing %s", tc.patterns, err, tc.want)
		}
	}
}
