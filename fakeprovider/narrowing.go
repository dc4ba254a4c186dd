package fakeprovider

// What a client of the oauth2 dialect may ask for, as an authorization
// server bounds it: its allowed scopes (RFC 6749 §3.3: the server "MAY
// fully or partially ignore the scope requested", or refuse it with
// invalid_scope, §5.2; the fake refuses), audiences, and resources (RFC 8707
// §2: "invalid_target" for a resource that is "invalid, missing, unknown,
// or malformed"). A resource is compared as the string sent, as servers
// compare resource indicators.

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ClientPolicy bounds what a client may ask for at the oauth2 token
// endpoint; a nil list leaves that kind unbounded.
type ClientPolicy struct {
	// Scopes: a client credentials, refresh or token exchange request
	// naming another scope is refused with invalid_scope.
	Scopes []string
	// Audiences and Resources: a request naming another audience
	// (client credentials, token exchange) or resource (any grant) is
	// refused with invalid_target.
	Audiences, Resources []string
	// IgnoresRefreshScope: a refresh asking a narrower scope is issued the
	// refresh token's whole scope, and its answer's scope says so (RFC 6749
	// §3.3 lets a server ignore the scope asked; ory/fosite does on refresh).
	IgnoresRefreshScope bool
}

// SetClientPolicy bounds what client id may ask for; the zero policy
// removes the bounds.
func (s *Server) SetClientPolicy(id string, p ClientPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.policies == nil {
		s.policies = map[string]ClientPolicy{}
	}
	s.policies[id] = p
}

// policyLocked is client's policy. s.mu must be held.
func (s *Server) policyLocked(client string) ClientPolicy { return s.policies[client] }

// errTarget is an invalid_target refusal; its message says why (the
// error code is the answer's error, not repeated in its description).
var errTarget = errors.New("target refused")

// scopeAllowed refuses a scope outside the policy (wrapping errRefreshScope).
func (p ClientPolicy) scopeAllowed(scope string) error {
	if p.Scopes == nil {
		return nil
	}
	for _, sc := range strings.Fields(scope) {
		if !slices.Contains(p.Scopes, sc) {
			return fmt.Errorf("%w: scope %q is not allowed for this client", errRefreshScope, sc)
		}
	}
	return nil
}

// targetsAllowed checks resources (each an absolute URI without fragment,
// RFC 8707 §2) and audiences against the policy, and returns what the token
// is for: both, sorted. The error wraps errTarget.
func (p ClientPolicy) targetsAllowed(resources, audiences []string) ([]string, error) {
	for _, r := range resources {
		if err := checkResource(r); err != nil {
			return nil, err
		}
		if p.Resources != nil && !slices.Contains(p.Resources, r) {
			return nil, fmt.Errorf("%w: resource %q is not allowed for this client", errTarget, r)
		}
	}
	for _, a := range audiences {
		if a == "" {
			return nil, fmt.Errorf("%w: an empty audience", errTarget)
		}
		if p.Audiences != nil && !slices.Contains(p.Audiences, a) {
			return nil, fmt.Errorf("%w: audience %q is not allowed for this client", errTarget, a)
		}
	}
	return sortedUnion(resources, audiences), nil
}

// checkResource refuses what RFC 8707 §2 says a resource is not: an
// absolute URI without a fragment.
func checkResource(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || strings.Contains(r, "#") {
		return fmt.Errorf("%w: resource %q must be an absolute URI without a fragment (RFC 8707 §2)", errTarget, r)
	}
	return nil
}

// refreshTargetLocked is what a refreshed access token is for: the
// resources asked, each among those the refresh token was granted for
// (RFC 8707 §2.2) or, for a token granted none, allowed by the client's
// policy; none asked: the token's own. s.mu must be held.
func (s *Server) refreshTargetLocked(rec *refreshRecord, resources []string) ([]string, error) {
	if len(resources) == 0 {
		return rec.aud, nil
	}
	p := s.policyLocked(rec.client)
	if len(rec.aud) > 0 {
		p.Resources = rec.aud
	}
	aud, err := p.targetsAllowed(resources, nil)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", errRefreshTarget, err)
	}
	return aud, nil
}

// sortedUnion is a and b together, sorted, without duplicates; nil when empty.
func sortedUnion(a, b []string) []string {
	out := slices.Concat(a, b)
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// targetKey names what a token is for, for IssuedFor: its scope-tokens and
// audiences, each sorted, in a form no two different pairs share.
func targetKey(scope string, aud []string) string {
	scopes := strings.Fields(scope)
	slices.Sort(scopes)
	return fmt.Sprintf("%q|%q", scopes, sortedUnion(aud, nil))
}

// IssuedFor counts access tokens issued, by any grant of any dialect, for
// exactly scope (space-delimited, any order; "" for none) and the
// audiences and resources aud (any order; none for the server's default):
// "one upstream call per variant". Reset zeroes it.
func (s *Server) IssuedFor(scope string, aud ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuedFor[targetKey(scope, aud)]
}

// Audiences are the resources and audiences accessToken was issued for,
// sorted (nil: the server's default, or a token it did not issue).
func (s *Server) Audiences(accessToken string) []string {
	rec, _ := s.lookupAccess(accessToken)
	return rec.aud
}
