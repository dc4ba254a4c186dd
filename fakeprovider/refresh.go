package fakeprovider

import (
	"errors"
	"strings"
	"time"
)

// refreshState is where a refresh token is in its life.
type refreshState int

const (
	refreshLive     refreshState = iota // never presented, or presented and refused without effect
	refreshRefused                      // refused once; still redeemable, but presenting it again is a reuse
	refreshConsumed                     // spent: by a refresh, or revoked by a refusal
	refreshRevoked                      // revoked at PathRevoke (RFC 7009): refused, and not a reuse
)

// refreshRecord stays in the store once used, so a second use can be told
// apart from an unknown token and counted as a reuse.
type refreshRecord struct {
	dialect Dialect
	client  string
	scope   string
	expires time.Time // zero: never
	state   refreshState
	rotated time.Time // when a refresh consumed it; zero otherwise. Starts any reuse grace.
	family  uint64    // the grant family it carries on (revocation.go)
	aud     []string  // the resources it was granted for (RFC 8707 §2.2); nil: none named
}

// SeedRefreshToken issues a valid refresh token for clientID in dialect d, as
// if an earlier grant had returned it, for configs that start from a seed
// refresh token. For APIVideo, clientID is the API key the token belongs to.
// OAuth2JSON and Endorsed have no refresh grant, so a token seeded for them is
// never accepted. Seeding counts as no call and no grant. The token expires
// as SetRefreshTokenLifetime says (by default never).
func (s *Server) SeedRefreshToken(d Dialect, clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, _ := s.newRefreshLocked(d, clientID, "", s.newFamilyLocked())
	return rt
}

// newRefreshLocked stores a new refresh token of grant family and says how to
// announce its lifetime. s.mu must be held.
func (s *Server) newRefreshLocked(d Dialect, client, scope string, family uint64) (string, refreshExpiry) {
	rt := newToken("rt_")
	rec := &refreshRecord{dialect: d, client: client, scope: scope, family: family}
	var announce refreshExpiry
	if s.refreshLifetime > 0 {
		secs := wholeSeconds(s.refreshLifetime)
		rec.expires = s.now().Add(time.Duration(secs) * time.Second)
		announce = newRefreshExpiry(s.refreshExpiryField, secs)
	}
	s.refresh[rt] = rec
	return rt, announce
}

// Why a refresh token was not redeemed. They go in a refusal, for the log
// and for tests; the client sees only the refusal's shape.
var (
	errRefreshUnknown = errors.New("refresh token is unknown")
	errRefreshReused  = errors.New("refresh token was already used")
	errRefreshExpired = errors.New("refresh token has expired")
	errRefreshClient  = errors.New("refresh token was issued to another client")
	errRefreshForced  = errors.New("refresh refused by RefuseRefreshes")
	errRefreshScope   = errors.New("requested scope exceeds the scope originally granted")
	errRefreshRevoked = errors.New("refresh token was revoked")
	errRefreshTarget  = errors.New("requested resource is not one the refresh token was granted for")
)

// ask is what a refresh request narrows: its scope ("" for the token's)
// and resources (none: the token's).
type ask struct {
	scope     string
	resources []string
}

// redeem consumes refresh token rt and issues a new access token and a new
// refresh token, atomically, so two concurrent uses of one token cannot both
// succeed. client is checked against the token's owner when checkClient is
// set. scope, when non-empty, may narrow the original scope.
//
// The error is errRefreshScope or errRefreshTarget (wrapped with the
// reason), or a *refusal carrying the shape in which
// the dialect refuses the token. A refusal for an unknown client or a token
// of another client leaves the token as it was; an expired token, and one a
// forced refusal hit, is marked so that presenting it again is a reuse.
func (s *Server) redeem(d Dialect, rt, client string, checkClient bool, a ask) (issued, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	shape := s.refusalLocked(d)
	forced, isForced := s.forcedRefusals.take()
	if isForced && forced != RefuseDefault {
		shape = forced
	}
	refuse := func(why error) (issued, error) { return issued{}, &refusal{shape: shape, why: why} }

	rec, ok := s.refresh[rt]
	if !ok || rec.dialect != d {
		return refuse(errRefreshUnknown)
	}
	inGrace := false
	switch rec.state {
	case refreshRevoked:
		return refuse(errRefreshRevoked)
	case refreshConsumed:
		if !s.inReuseGraceLocked(rec, now) {
			s.reuses++
			if s.previousRevocation == RevokePreviousOnRefresh {
				s.revokeFamilyLocked(now, rec.family) // fosite's reuse detection
			}
			return refuse(errRefreshReused)
		}
		inGrace = true
		s.graceReuses++
	case refreshRefused:
		s.reuses++
	}
	switch {
	case !rec.expires.IsZero() && !now.Before(rec.expires):
		if rec.state == refreshLive {
			rec.state = refreshRefused
		}
		return refuse(errRefreshExpired)
	case checkClient && rec.client != client:
		return refuse(errRefreshClient)
	case isForced:
		if !inGrace {
			rec.state = refreshRefused
			if shape.revokes() {
				rec.state = refreshConsumed
			}
		}
		return refuse(errRefreshForced)
	}
	policy := s.policyLocked(rec.client)
	newScope, err := narrowScope(rec.scope, a.scope)
	if err == nil {
		err = policy.scopeAllowed(newScope)
	}
	if policy.IgnoresRefreshScope {
		newScope = rec.scope
	}
	if err != nil {
		return issued{}, err
	}
	aud, err := s.refreshTargetLocked(rec, a.resources)
	if err != nil {
		return issued{}, err
	}
	if !inGrace {
		rec.state, rec.rotated = refreshConsumed, now
	}
	return s.issueForLocked(d, rec.client, target{scope: newScope, refreshScope: rec.scope, aud: aud, refreshAud: rec.aud},
		grantRefreshToken, true, rec.family), nil
}

// noteRefusedRefresh records that refresh token rt was presented to d and
// refused before redemption (oauth2_json has no refresh grant): presenting it
// again counts as a reuse.
func (s *Server) noteRefusedRefresh(d Dialect, rt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refresh[rt]
	switch {
	case !ok || rec.dialect != d:
	case rec.state == refreshLive:
		rec.state = refreshRefused
	default:
		s.reuses++
	}
}

// narrowScope is the scope of a refreshed token: the original one, or the
// requested one when it is within the original (RFC 6749 §6).
func narrowScope(granted, requested string) (string, error) {
	if requested == "" {
		return granted, nil
	}
	if granted != "" && !scopeSubset(requested, granted) {
		return "", errRefreshScope
	}
	return requested, nil
}

func scopeSubset(requested, granted string) bool {
	have := map[string]bool{}
	for _, g := range strings.Fields(granted) {
		have[g] = true
	}
	for _, r := range strings.Fields(requested) {
		if !have[r] {
			return false
		}
	}
	return true
}
