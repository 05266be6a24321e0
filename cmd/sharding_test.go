package main

import (
	"strings"
	"testing"
)

func TestCheckSharding(t *testing.T) {
	for _, tc := range []struct {
		shards  int
		dsn     string
		wantErr string
	}{
		{0, "sqlite:///var/lib/data-import/store.db", ""},
		{0, "postgres://u@h/db", ""},
		{32, "postgres://u@h/db", ""},
		{4, "POSTGRESQL://u@h/db", ""},
		{32, "sqlite:///var/lib/data-import/store.db", "--shards 32 needs the PostgreSQL store"},
		{2, "/var/lib/data-import/store.db", "the SQLite store is a file one replica opens"},
		{-1, "postgres://u@h/db", "want 0"},
	} {
		err := checkSharding(tc.shards, tc.dsn)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkSharding(%d, %q) = %v; want %q", tc.shards, tc.dsn, err, tc.wantErr)
		}
	}
}

func TestReceiverAdvertise(t *testing.T) {
	for _, tc := range []struct {
		name, advertise, bind string
		shards                int
		podIP, want, wantErr  string
	}{
		{name: "not sharded", bind: ":9292", podIP: "10.0.0.1"},
		{name: "no receiver", bind: "0", shards: 4, podIP: "10.0.0.1"},
		{name: "pod IP and the bind port", bind: ":9292", shards: 4, podIP: "10.0.0.1", want: "10.0.0.1:9292"},
		{name: "IPv6 pod", bind: "[::]:9292", shards: 4, podIP: "fd00::1", want: "[fd00::1]:9292"},
		{name: "flag wins", advertise: "manager-0.manager:9292", bind: ":9292", shards: 4, podIP: "10.0.0.1", want: "manager-0.manager:9292"},
		{name: "no pod IP", bind: ":9292", shards: 4, wantErr: "needs POD_IP"},
		{name: "random port", bind: "127.0.0.1:0", shards: 4, podIP: "10.0.0.1", wantErr: "fixed port"},
		{name: "bad flag", advertise: "10.0.0.1", bind: ":9292", shards: 4, wantErr: "want host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := receiverAdvertise(tc.advertise, tc.bind, tc.shards, tc.podIP)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("receiverAdvertise = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
