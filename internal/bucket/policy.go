package bucket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// EndpointPolicy is the platform admin's say over where the S3 client connects: which
// custom endpoints a source may name, to which of them the operator's own credentials may
// be sent, and which addresses may be dialed at all. Its zero value is the strictest
// policy: AWS only, and none of the always-refused addresses (see Refused). It is built
// once from the manager's flags and shared read-only by every client.
//
// Two checks apply, one after the other:
//
//  1. When the client is built (New): a custom Endpoint (and a custom STS endpoint) must
//     match AllowedEndpoints, and when the operator's own identity would sign the
//     requests (Config.Credentials nil) also OperatorIdentityEndpoints. Nothing is dialed
//     for a refused endpoint.
//  2. On every connection the S3 (and AssumeRole STS) client opens, after DNS resolution,
//     on the address actually dialed (so DNS rebinding does not get around it): an address
//     in AllowedCIDRs is allowed; otherwise loopback, link-local (cloud metadata),
//     unspecified, multicast and the other always-refused addresses, the API server's
//     addresses and DeniedCIDRs are refused. One exception: an endpoint the admin listed
//     with an IP address (e.g. http://10.0.0.5:9000) may dial exactly that address and
//     port, whatever range it is in. A host name never lifts the address check, even when
//     listed exactly: whoever controls its DNS record (or, for a Service name, the Service)
//     could point it anywhere.
//
// Both refusals read the same (ReasonEndpointNotAllowed, EndpointNotAllowedMessage), so a
// tenant learns "not allowed" and nothing about what is behind the address.
type EndpointPolicy struct {
	// AllowedEndpoints are the custom endpoints a source may name. Empty: none.
	AllowedEndpoints []EndpointPattern
	// OperatorIdentityEndpoints are the custom endpoints that may receive requests signed
	// with the operator's own identity. An endpoint must be in AllowedEndpoints too.
	OperatorIdentityEndpoints []EndpointPattern
	// AllowedCIDRs are dialed even when they are in a refused range.
	AllowedCIDRs []netip.Prefix
	// DeniedCIDRs are refused in addition to the always-refused ranges, e.g. the cluster's
	// service and pod CIDRs.
	DeniedCIDRs []netip.Prefix
	// APIServer holds the Kubernetes API server's addresses, refused on every port.
	APIServer []netip.Addr
}

// Reasons of the policy's refusals.
const (
	// ReasonEndpointNotAllowed: the endpoint is not on the admin's allow-list, or the
	// address it resolves to is refused at dial time.
	ReasonEndpointNotAllowed = "EndpointNotAllowed"
	// ReasonOperatorIdentityEndpointNotAllowed: the operator's own credentials would be sent
	// to a custom endpoint the admin did not allow for them.
	ReasonOperatorIdentityEndpointNotAllowed = "OperatorIdentityEndpointNotAllowed"
)

// EndpointNotAllowedMessage is the one message of every endpoint or address refusal. It is
// fixed: it names neither the address nor why, so status is no port scanner.
const EndpointNotAllowedMessage = "the endpoint is not allowed by the operator's endpoint policy: " +
	"ask the platform admin to allow it (manager flag --allowed-endpoints; an endpoint on a private or " +
	"cluster address also needs to be listed by IP address or in --allowed-cidrs), or use an endpoint the admin allowed"

// OperatorIdentityEndpointNotAllowedMessage explains the refusal to sign requests to a custom
// endpoint with the operator's own identity.
const OperatorIdentityEndpointNotAllowedMessage = "the operator's own identity (no credentials Secret: the " +
	"default AWS credentials, with or without assumeRole) is never sent to a custom endpoint the platform admin " +
	"did not allow for it (manager flag --operator-identity-endpoints): reference a credentials Secret with " +
	"keys for this endpoint, or ask the admin to allow it"

// EndpointPattern is one entry of an endpoint allow-list: scheme://host[:port].
//
//   - scheme is http or https;
//   - host is a DNS name, an IPv4 address, an IPv6 address in brackets, or "*." followed by a
//     DNS name, which matches every name ending in "."+that name (one or more labels more:
//     *.minio.example matches a.minio.example and a.b.minio.example, not minio.example);
//   - port defaults to the scheme's (80, 443); an endpoint matches only on that exact port.
//
// Paths, queries and user info are not allowed in a pattern; an endpoint's path does not
// take part in matching.
type EndpointPattern struct {
	scheme string
	host   string     // lower case, no trailing dot; for a wildcard the suffix without "*."
	addr   netip.Addr // valid when host is an IP address
	port   uint16
	wild   bool
}

// ParseEndpointPattern parses one allow-list entry (see EndpointPattern).
func ParseEndpointPattern(s string) (EndpointPattern, error) {
	var p EndpointPattern
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return p, fmt.Errorf("endpoint pattern %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return p, fmt.Errorf("endpoint pattern %q: the scheme must be http or https", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return p, fmt.Errorf("endpoint pattern %q: only scheme://host[:port] is allowed (no path, query or user info)", s)
	}
	p.scheme = u.Scheme
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		p.wild, host = true, rest
	}
	if host == "" || strings.Contains(host, "*") {
		return p, fmt.Errorf("endpoint pattern %q: the host must be a name, an address, or *. and a name", s)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if p.wild {
			return p, fmt.Errorf("endpoint pattern %q: a wildcard needs a DNS name, not an address", s)
		}
		p.addr = a.Unmap()
		host = p.addr.String()
	}
	p.host = host
	if p.port, err = portOf(u); err != nil {
		return p, fmt.Errorf("endpoint pattern %q: %w", s, err)
	}
	return p, nil
}

// ParseEndpointPatterns parses a comma-separated list; empty items are ignored.
func ParseEndpointPatterns(list string) ([]EndpointPattern, error) {
	var out []EndpointPattern
	for _, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		p, err := ParseEndpointPattern(item)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseCIDRs parses a comma-separated list of CIDRs; a bare address is its own /32 or /128.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", item, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// String is the pattern as it is written in the flag.
func (p EndpointPattern) String() string {
	host := p.host
	if p.addr.Is6() {
		host = "[" + host + "]"
	}
	if p.wild {
		host = "*." + host
	}
	return p.scheme + "://" + host + ":" + strconv.Itoa(int(p.port))
}

// matches reports whether the endpoint u (already validated as an http(s) URL) matches.
func (p EndpointPattern) matches(u *url.URL) bool {
	port, err := portOf(u)
	if err != nil || u.Scheme != p.scheme || port != p.port {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return p.addr.IsValid() && a.Unmap() == p.addr
	}
	if p.wild {
		return strings.HasSuffix(host, "."+p.host)
	}
	return !p.addr.IsValid() && host == p.host
}

func portOf(u *url.URL) (uint16, error) {
	if s := u.Port(); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("port %q is not a port number", s)
		}
		return uint16(n), nil
	}
	if u.Scheme == "https" {
		return 443, nil
	}
	return 80, nil
}

// checkEndpoints is step 1 of the policy, run by New: cfg's custom endpoints must be
// allowed. It returns the addresses the dial guard lets through whatever their range: the
// endpoints allowed by an IP-address pattern.
func (p *EndpointPolicy) checkEndpoints(cfg Config) ([]netip.AddrPort, error) {
	var (
		exempt     []netip.AddrPort
		operatorID = cfg.operatorIdentity()
	)
	for _, e := range cfg.customEndpoints() {
		u, err := url.Parse(e)
		if err != nil {
			return nil, notAllowed(err)
		}
		allowed := false
		for _, pat := range p.AllowedEndpoints {
			if pat.matches(u) {
				allowed = true
				if pat.addr.IsValid() {
					exempt = append(exempt, netip.AddrPortFrom(pat.addr, pat.port))
				}
			}
		}
		if !allowed {
			return nil, notAllowed(errors.New("not on the allow-list"))
		}
		if operatorID && !matchesAny(p.OperatorIdentityEndpoints, u) {
			return nil, &Error{Reason: ReasonOperatorIdentityEndpointNotAllowed, Message: OperatorIdentityEndpointNotAllowedMessage}
		}
	}
	return exempt, nil
}

// operatorIdentity reports whether requests are signed with the operator's own identity:
// no credentials of the source's own (the default chain, with or without AssumeRole on top).
// A ServiceAccount's web identity is the source's own. A new credentials mode of the
// source's own must be excluded here too.
func (cfg Config) operatorIdentity() bool { return cfg.Credentials == nil && cfg.WebIdentity == nil }

func matchesAny(pats []EndpointPattern, u *url.URL) bool {
	for _, pat := range pats {
		if pat.matches(u) {
			return true
		}
	}
	return false
}

// errAddressNotAllowed is the dial guard's refusal; it never reaches a message.
var errAddressNotAllowed = errors.New("address refused by the endpoint policy")

// notAllowedError marks a refusal by the policy, at New or at dial time.
type notAllowedError struct{ err error }

func (e *notAllowedError) Error() string {
	return "not allowed by the endpoint policy: " + e.err.Error()
}
func (e *notAllowedError) Unwrap() error { return e.err }

func notAllowed(err error) *Error {
	return &Error{Reason: ReasonEndpointNotAllowed, Message: EndpointNotAllowedMessage, Err: &notAllowedError{err: err}}
}

func isNotAllowed(err error) bool {
	var na *notAllowedError
	return errors.As(err, &na)
}

// alwaysRefused are ranges no S3 endpoint of a tenant has business in, beyond what
// netip's predicates cover: "this network", broadcast, and cloud metadata services that are
// not link-local (Alibaba's; Azure's wire server; AWS's IPv6 range of IMDS, the EKS Pod
// Identity agent and the Amazon DNS server).
var alwaysRefused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("168.63.129.16/32"),
	netip.MustParsePrefix("fd00:ec2::/32"),
}

// nat64 are the NAT64 prefixes (well-known and local-use, RFC 6052 and 8215) as /96: an
// address there reaches the IPv4 address in its last 32 bits.
var nat64 = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// Refused reports whether the dial guard refuses to connect to ap for a client whose
// endpoints allowed by IP address are exempt.
func (p *EndpointPolicy) Refused(ap netip.AddrPort, exempt []netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	ap = netip.AddrPortFrom(a, ap.Port())
	for _, e := range exempt {
		if e == ap {
			return false
		}
	}
	for _, c := range p.AllowedCIDRs {
		if c.Contains(a) {
			return false
		}
	}
	return p.refusedAddr(a)
}

func (p *EndpointPolicy) refusedAddr(a netip.Addr) bool {
	for _, n := range nat64 {
		if n.Contains(a) {
			b := a.As16()
			if p.refusedAddr(netip.AddrFrom4([4]byte(b[12:]))) {
				return true
			}
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, set := range [][]netip.Prefix{alwaysRefused, p.DeniedCIDRs} {
		for _, c := range set {
			if c.Contains(a) {
				return true
			}
		}
	}
	for _, s := range p.APIServer {
		if s.Unmap() == a {
			return true
		}
	}
	return false
}

// control is the dial guard: net.Dialer.ControlContext runs it on every address the dialer
// is about to connect to, after DNS resolution, and a refusal fails that address before a
// single packet is sent.
func (p *EndpointPolicy) control(exempt []netip.AddrPort) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !strings.HasPrefix(network, "tcp") {
			return &notAllowedError{err: fmt.Errorf("%s %s: %w", network, address, errAddressNotAllowed)}
		}
		if p.Refused(ap, exempt) {
			return &notAllowedError{err: fmt.Errorf("%s: %w", ap, errAddressNotAllowed)}
		}
		return nil
	}
}

// APIServerAddrs returns the addresses of the Kubernetes API server from the hosts the
// manager knows (the client configuration's host URL or host:port, KUBERNETES_SERVICE_HOST),
// resolving names once. Lookup failures are returned with the addresses found so far; the
// loopback check covers a local API server whatever happens.
func APIServerAddrs(ctx context.Context, hosts ...string) ([]netip.Addr, error) {
	var (
		out  []netip.Addr
		errs []error
	)
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if u, err := url.Parse(h); err == nil && u.Host != "" {
			h = u.Hostname()
		} else if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.Trim(h, "[]")
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolving the API server host %s: %w", h, err))
			continue
		}
		for _, a := range addrs {
			out = append(out, a.Unmap())
		}
	}
	return out, errors.Join(errs...)
}
