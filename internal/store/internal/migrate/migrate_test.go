package migrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr string
	}{
		{
			name: "sorted by version, other files ignored",
			files: fstest.MapFS{
				"m/0002_b.sql": {Data: []byte("B")},
				"m/0001_a.sql": {Data: []byte("A")},
				"m/README.md":  {Data: []byte("x")},
				"m/0003_c.sql": {Data: []byte("C")},
			},
			want: []int{1, 2, 3},
		},
		{
			name:    "gap",
			files:   fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}},
			wantErr: `migration "0003_c": want version 2`,
		},
		{
			name:    "duplicate",
			files:   fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}},
			wantErr: `want version 2`,
		},
		{
			name:    "bad name",
			files:   fstest.MapFS{"m/init.sql": {}},
			wantErr: `migration "init.sql": name must be NNNN_description.sql`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.files, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d migrations, want %d", len(got), len(tt.want))
			}
			for i, m := range got {
				if m.Version != tt.want[i] {
					t.Errorf("migration %d: version %d, want %d", i, m.Version, tt.want[i])
				}
			}
			if got[0].SQL != "A" || got[0].Name != "0001_a" {
				t.Errorf("first migration = %+v", got[0])
			}
		})
	}
}
