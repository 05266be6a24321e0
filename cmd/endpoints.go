package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// netFlags are the platform admin's endpoint policy (docs/multi-tenancy.md, guarantee 3).
type netFlags struct {
	allowedEndpoints, operatorIdentityEndpoints, allowedCIDRs, deniedCIDRs string
}

func (f *netFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.allowedEndpoints, "allowed-endpoints", "",
		"Comma-separated custom S3 endpoints sources may name (spec.endpoint), each scheme://host[:port]: scheme http or https; "+
			"host a DNS name, an IP address ([v6] in brackets) or *.name (any name ending in .name); port defaults to 80/443 and must match exactly. "+
			"Empty: no custom endpoint, AWS only. A host name listed here is still checked at dial time (loopback, link-local, "+
			"the API server, --denied-cidrs are refused); an endpoint listed by IP address may dial exactly that address and port.")
	fs.StringVar(&f.operatorIdentityEndpoints, "operator-identity-endpoints", "",
		"Comma-separated custom endpoints (same syntax as --allowed-endpoints, and also listed there) to which requests signed with the "+
			"operator's own identity (a source without a credentials Secret, with or without assumeRole) may be sent. Empty: none.")
	fs.StringVar(&f.allowedCIDRs, "allowed-cidrs", "",
		"Comma-separated CIDRs (or addresses) the S3 client may dial even when they are refused by default (loopback, link-local, "+
			"the API server's addresses) or by --denied-cidrs. It lifts the check for every port of those addresses.")
	fs.StringVar(&f.deniedCIDRs, "denied-cidrs", "",
		"Comma-separated CIDRs the S3 client must never dial, in addition to loopback, link-local (cloud metadata), unspecified, "+
			"multicast and the API server's addresses; put the cluster's pod and service CIDRs here.")
}

// policy builds the endpoint policy from the flags and the API server's hosts (the client
// configuration's and KUBERNETES_SERVICE_HOST), resolved once at start.
func (f *netFlags) policy(ctx context.Context, apiServerHosts ...string) (*bucket.EndpointPolicy, error) {
	var (
		p   bucket.EndpointPolicy
		err error
	)
	if p.AllowedEndpoints, err = bucket.ParseEndpointPatterns(f.allowedEndpoints); err != nil {
		return nil, fmt.Errorf("--allowed-endpoints: %w", err)
	}
	if p.OperatorIdentityEndpoints, err = bucket.ParseEndpointPatterns(f.operatorIdentityEndpoints); err != nil {
		return nil, fmt.Errorf("--operator-identity-endpoints: %w", err)
	}
	if p.AllowedCIDRs, err = bucket.ParseCIDRs(f.allowedCIDRs); err != nil {
		return nil, fmt.Errorf("--allowed-cidrs: %w", err)
	}
	if p.DeniedCIDRs, err = bucket.ParseCIDRs(f.deniedCIDRs); err != nil {
		return nil, fmt.Errorf("--denied-cidrs: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The manager cannot run without reaching the API server, so a name that does not
	// resolve now fails the start instead of leaving the API server unguarded.
	if p.APIServer, err = bucket.APIServerAddrs(rctx, apiServerHosts...); err != nil {
		return nil, fmt.Errorf("the API server's addresses, refused to the S3 client: %w", err)
	}
	return &p, nil
}
