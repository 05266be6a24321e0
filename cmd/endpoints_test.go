package main

import (
	"context"
	"flag"
	"net/netip"
	"strings"
	"testing"
)

func TestEndpointPolicyFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		hosts   []string
		wantErr string
	}{
		{name: "defaults: AWS only", hosts: []string{"https://127.0.0.1:6443", "10.96.0.1"}},
		{name: "all set", args: []string{
			"--allowed-endpoints=https://minio.example:9000, https://*.s3.example,http://10.0.0.5:9000",
			"--operator-identity-endpoints=https://*.s3.example",
			"--allowed-cidrs=10.1.0.0/16", "--denied-cidrs=10.0.0.0/8,fd00::/8",
		}, hosts: []string{"https://[::1]:6443"}},
		{name: "bad endpoint", args: []string{"--allowed-endpoints=minio.example:9000"}, wantErr: "--allowed-endpoints"},
		{name: "endpoint with a path", args: []string{"--operator-identity-endpoints=https://a.example/x"}, wantErr: "--operator-identity-endpoints"},
		{name: "bad allowed CIDR", args: []string{"--allowed-cidrs=10.0.0.0/40"}, wantErr: "--allowed-cidrs"},
		{name: "bad denied CIDR", args: []string{"--denied-cidrs=ten"}, wantErr: "--denied-cidrs"},
		{name: "API server name that does not resolve", hosts: []string{"https://apiserver.invalid:6443"}, wantErr: "API server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f netFlags
			fs := flag.NewFlagSet("manager", flag.ContinueOnError)
			f.bind(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			p, err := f.policy(context.Background(), tc.hosts...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.APIServer) == 0 {
				t.Fatal("no API server address")
			}
			for _, a := range p.APIServer {
				if !p.Refused(netip.AddrPortFrom(a, 6443), nil) {
					t.Errorf("the API server %s is not refused", a)
				}
			}
		})
	}
}
