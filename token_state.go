package tokenbroker

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// tokenPrefix keys token state entries by name, apart from config entries.
const tokenPrefix = "token/"

// tokenState is one name's stored token/<name> entry: the cached access token
// and the refresh token that continues the chain.
type tokenState struct {
	AccessToken  string         `json:"access_token,omitempty"`
	TokenType    string         `json:"token_type,omitempty"`
	RefreshToken string         `json:"refresh_token,omitempty"`
	IssuedAt     time.Time      `json:"issued_at,omitzero"`
	ExpiresAt    time.Time      `json:"expires_at,omitzero"`
	Scopes       []string       `json:"scopes,omitempty"`
	Grant        provider.Grant `json:"grant,omitempty"`
	// IDToken is the latest OpenID Connect ID token the provider issued
	// with the chain's tokens (a user's authorization, a refresh), kept
	// only to be presented as an RFC 8693 subject token (a role's
	// subject_token_type=id_token); never returned, never trusted here.
	IDToken string `json:"id_token,omitempty"`
	// Permissions and Repositories: what a GitHub installation token may do, and where.
	Permissions  map[string]string `json:"permissions,omitempty"`
	Repositories []string          `json:"repositories,omitempty"`
	// NeedsRefreshToken: the provider refused the chain (or may have spent its
	// last token) and the config cannot start a new one; an operator must
	// write a new refresh_token.
	NeedsRefreshToken bool `json:"needs_refresh_token,omitempty"`
	// RefreshPending: RefreshToken was (about to be) sent and no answer was
	// saved yet. Found on load, it means a process died mid-refresh: the
	// token may be spent and is not sent again (outside refresh_reuse_grace).
	RefreshPending bool `json:"refresh_pending,omitempty"`
	// RefreshExpiresAt is when the provider said the refresh token expires
	// (zero: it did not say).
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// RefreshSentAt and RefreshSends: when RefreshToken was first sent and
	// how often; they bound a resend within refresh_reuse_grace to one.
	RefreshSentAt time.Time `json:"refresh_sent_at,omitzero"`
	RefreshSends  int       `json:"refresh_sends,omitempty"`
	// Connected: a user's authorization started this chain (onboarding.go);
	// refreshes carry it on, and it is never replaced by the base grant.
	Connected *connection `json:"connected,omitempty"`

	// Webhook bookkeeping (webhook.go). Events: what this state's change is
	// to tell the app, stored in the same write as the change and moved to
	// the outbox once this state is stored. NotifiedReauthorization and
	// NotifiedFailing: the chain's connection.needs_reauthorization and
	// connection.failing were recorded (once per chain, once per episode).
	Events                  []*webhookEvent `json:"webhook_events,omitempty"`
	NotifiedReauthorization bool            `json:"notified_reauthorization,omitempty"`
	NotifiedFailing         bool            `json:"notified_failing,omitempty"`
}

// expiryLeeway: a token this close to expiry is not handed out; it would die
// in transit. Short-lived tokens get a tenth of their lifetime instead, so a
// 5 s token is still served from cache for most of its refresh window.
const expiryLeeway = 2 * time.Second

func (s *tokenState) leeway() time.Duration { return min(expiryLeeway, s.lifetime()/10) }

// lifetime is how long the current access token lives in all.
func (s *tokenState) lifetime() time.Duration { return s.ExpiresAt.Sub(s.IssuedAt) }

// refreshWindow is how long before expiry a refresh starts: refresh_ahead, but
// never more than half the lifetime, so short-lived tokens still get served.
func (s *tokenState) refreshWindow(refreshAhead time.Duration) time.Duration {
	return min(refreshAhead, s.lifetime()/2)
}

// refreshAt is when the token enters its refresh window. This is the one
// definition of "a refresh is due": reads, the background pass and the ttl
// handed to Vault Agent all use it.
func (s *tokenState) refreshAt(refreshAhead time.Duration) time.Time {
	return s.ExpiresAt.Add(-s.refreshWindow(refreshAhead))
}

// usableFor reports whether the access token can be handed out with at least
// need left (and never closer to expiry than its leeway).
func (s *tokenState) usableFor(now time.Time, need time.Duration) bool {
	return s != nil && s.AccessToken != "" && s.ExpiresAt.Sub(now) > max(need, s.leeway())
}

// mayResend reports whether the refresh token, already sent without a
// recorded answer, may be sent once more: only inside the provider's reuse
// grace, counted from its first sending.
func (s *tokenState) mayResend(now time.Time, grace time.Duration) bool {
	return grace > 0 && s.RefreshSends == 1 && now.Sub(s.RefreshSentAt) < grace
}

// refreshExpired reports whether the provider said the refresh token is dead by now.
func (s *tokenState) refreshExpired(now time.Time) bool {
	return !s.RefreshExpiresAt.IsZero() && !now.Before(s.RefreshExpiresAt)
}

// withoutAccessToken keeps the chain but forgets the access token, so the next read mints.
func (s *tokenState) withoutAccessToken() *tokenState {
	return s.edited(func(st *tokenState) {
		st.AccessToken, st.TokenType, st.Scopes, st.Grant = "", "", nil, ""
		st.IssuedAt, st.ExpiresAt = time.Time{}, time.Time{}
		st.Permissions, st.Repositories = nil, nil
	})
}

// withoutChain forgets the refresh token and everything about its sending.
func (s *tokenState) withoutChain() *tokenState {
	return s.edited(func(st *tokenState) {
		st.RefreshToken, st.RefreshPending, st.RefreshExpiresAt = "", false, time.Time{}
		st.RefreshSentAt, st.RefreshSends = time.Time{}, 0
	})
}

// edited returns a copy of s changed by edit; states are never edited in place.
func (s *tokenState) edited(edit func(*tokenState)) *tokenState {
	next := *s
	edit(&next)
	return &next
}

// loadState reads name's token state; nil when it has none.
func loadState(ctx context.Context, s logical.Storage, name string) (*tokenState, error) {
	st, err := stateEntries.load(ctx, s, name)
	if st != nil {
		st.internStrings()
	}
	return st, err
}

// sharedStrings are values that every chain's state holds alike: the token
// types and grants. A state just decoded or built points at these instead of
// keeping its own copy (some 40 bytes a chain at 100 000 chains).
var sharedStrings = func() map[string]string {
	m := map[string]string{"Bearer": "Bearer", "bearer": "bearer"}
	for _, g := range []provider.Grant{provider.GrantClientCredentials, provider.GrantRefreshToken, provider.GrantAPIKey,
		provider.GrantAuthorizationCode, provider.GrantDeviceCode, provider.GrantInstallationToken, provider.GrantJWTBearer} {
		m[string(g)] = string(g)
	}
	return m
}()

// internStrings makes a new state (not yet shared) use sharedStrings.
func (s *tokenState) internStrings() {
	if v, ok := sharedStrings[s.TokenType]; ok {
		s.TokenType = v
	}
	if v, ok := sharedStrings[string(s.Grant)]; ok {
		s.Grant = provider.Grant(v)
	}
}
