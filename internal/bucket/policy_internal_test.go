package bucket

import (
	"net/http"
	"testing"
)

// Under a policy a custom endpoint is dialed directly: through HTTP(S)_PROXY the guard would
// check the proxy's address, and the proxy would reach any target for us. AWS endpoints keep
// the environment's proxy.
func TestPolicyBypassesTheEnvironmentProxyForCustomEndpoints(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	policy := &EndpointPolicy{}
	tests := []struct {
		name      string
		cfg       Config
		wantProxy bool
	}{
		{"custom endpoint under a policy", Config{Endpoint: "https://minio.example", Policy: policy}, false},
		{"custom STS endpoint under a policy", Config{AssumeRole: &AssumeRole{RoleARN: "r", STSEndpoint: "https://sts.example"}, Policy: policy}, false},
		{"AWS under a policy", Config{Policy: policy}, true},
		{"custom endpoint without a policy", Config{Endpoint: "https://minio.example"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newHTTPClient(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := c.Transport.(*http.Transport)
			if got := tr.Proxy != nil; got != tc.wantProxy {
				t.Errorf("proxy from the environment = %v, want %v", got, tc.wantProxy)
			}
		})
	}
}
