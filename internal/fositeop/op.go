// Package fositeop runs a real, strict OAuth 2.0 authorization server on
// loopback for tests: ory/fosite (the library Ory Hydra is built on, which
// nobody here wrote), composed from its own handlers over its in-memory
// store, with opaque HMAC tokens as Hydra issues by default.
//
// It is as strict as fosite is by default:
//   - a refresh (RFC 6749 §6) rotates the refresh token and revokes the
//     access token issued with the one presented (fosite's
//     RefreshTokenGrantHandler, MemoryStore.RotateRefreshToken);
//   - a refresh token presented twice revokes the whole family: its
//     refresh and access tokens (RFC 6819 §5.2.2.3, fosite's
//     handleRefreshTokenReuse);
//   - the authorization code grant needs PKCE with S256 (RFC 7636; plain
//     is refused, fosite's default).
//
// Client credentials tokens (RFC 6749 §4.4) each carry their own request
// id, so a new one does not revoke an earlier one.
//
// Endpoints: token (client_credentials, refresh_token, authorization_code;
// client_secret_basic or client_secret_post), authorization (auto-approves
// a fixed user and grants every scope asked for, offline included, then
// redirects with code and state), RFC 7662 introspection and RFC 7009
// revocation. Active asks fosite itself whether an access token is active,
// and RefreshTokens counts what the token endpoint was shown. No token or
// secret is ever logged.
package fositeop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
)

// Paths of the endpoints under the server's URL.
const (
	PathToken      = "/oauth2/token"
	PathAuthorize  = "/oauth2/auth"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
)

// Subject is the user the authorization endpoint signs in and approves.
const Subject = "test-user"

// DefaultScopes are what a client may ask for when Client.Scopes is empty:
// offline and offline_access are the scopes fosite issues refresh tokens for;
// openid is granted, but no ID token issued (no OpenID Connect handler here).
var DefaultScopes = []string{"offline", "offline_access", "openid", "read", "write"}

// Client is a confidential client. fosite's DefaultClient takes its secret
// by HTTP Basic (client_secret_basic) or in the body (client_secret_post).
type Client struct {
	ID, Secret  string
	RedirectURI string
	Scopes      []string // default DefaultScopes
}

// Options configure a server.
type Options struct {
	// AccessTokenLifespan is how long access tokens live (default 1 h).
	AccessTokenLifespan time.Duration
	Clients             []Client
}

// OP is a running server.
type OP struct {
	URL, TokenURL, AuthURL, IntrospectionURL, RevocationURL string

	srv      *httptest.Server
	provider fosite.OAuth2Provider

	mu sync.Mutex
	// seen holds sha256 of every refresh token presented, never the token.
	seen     map[[32]byte]bool
	counts   map[string]*counts // by client id
	clientOf map[string]bool
}

type counts struct {
	refreshPresented, refreshReused int
	grants                          map[string]int // successful token responses by grant_type
}

// Start runs a server on a 127.0.0.1 port; Close stops it.
func Start(opts Options) (*OP, error) {
	secret := make([]byte, 32) // the HMAC key of every token fosite issues
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	lifespan := opts.AccessTokenLifespan
	if lifespan == 0 {
		lifespan = time.Hour
	}
	conf := &fosite.Config{
		AccessTokenLifespan: lifespan,
		GlobalSecret:        secret,
		EnforcePKCE:         true,
		// bcrypt's minimum cost for the client secrets: every token request
		// checks one, and at the default cost (12) under -race a renewal
		// would take seconds. It changes no token behaviour.
		HashCost: 4,
	}
	st := &memoryStore{MemoryStore: storage.NewMemoryStore()}
	o := &OP{seen: map[[32]byte]bool{}, counts: map[string]*counts{}, clientOf: map[string]bool{}}
	for _, c := range opts.Clients {
		if c.ID == "" || c.Secret == "" {
			return nil, errors.New("fositeop: a client needs an id and a secret")
		}
		hash, err := conf.GetSecretsHasher(context.Background()).Hash(context.Background(), []byte(c.Secret))
		if err != nil {
			return nil, fmt.Errorf("fositeop: hashing a client secret: %w", err)
		}
		scopes := c.Scopes
		if len(scopes) == 0 {
			scopes = DefaultScopes
		}
		st.Clients[c.ID] = &fosite.DefaultClient{
			ID:            c.ID,
			Secret:        hash,
			RedirectURIs:  []string{c.RedirectURI},
			ResponseTypes: []string{"code"},
			GrantTypes:    []string{"authorization_code", "refresh_token", "client_credentials"},
			Scopes:        scopes,
		}
		o.counts[c.ID] = &counts{grants: map[string]int{}}
		o.clientOf[c.ID] = true
	}
	o.provider = compose.Compose(conf, st, compose.NewOAuth2HMACStrategy(conf),
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)

	mux := http.NewServeMux()
	mux.Handle(PathToken, o.count(http.HandlerFunc(o.token)))
	mux.HandleFunc(PathAuthorize, o.authorize)
	mux.HandleFunc(PathIntrospect, o.introspect)
	mux.HandleFunc(PathRevoke, o.revoke)
	o.srv = httptest.NewServer(mux) // 127.0.0.1:0
	o.URL = o.srv.URL
	o.TokenURL, o.AuthURL = o.URL+PathToken, o.URL+PathAuthorize
	o.IntrospectionURL, o.RevocationURL = o.URL+PathIntrospect, o.URL+PathRevoke
	return o, nil
}

// Close stops the server.
func (o *OP) Close() { o.srv.Close() }

// Active reports whether fosite takes token as an active access token now:
// its own introspection (RFC 7662's "active"), as the endpoint answers it.
func (o *OP) Active(token string) bool {
	use, _, err := o.provider.IntrospectToken(context.Background(), token, fosite.AccessToken, new(fosite.DefaultSession))
	return err == nil && use == fosite.AccessToken
}

// Scopes are the scopes fosite granted the active access token token
// (nil if it is not one).
func (o *OP) Scopes(token string) []string {
	use, ar, err := o.provider.IntrospectToken(context.Background(), token, fosite.AccessToken, new(fosite.DefaultSession))
	if err != nil || use != fosite.AccessToken {
		return nil
	}
	return ar.GetGrantedScopes()
}

// RefreshTokens reports how many refresh tokens clientID presented at the
// token endpoint, and how many of those had been presented before (by
// anyone): each such reuse makes fosite revoke the token's family.
func (o *OP) RefreshTokens(clientID string) (presented, reused int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.counts[clientID]; c != nil {
		return c.refreshPresented, c.refreshReused
	}
	return 0, 0
}

// Grants reports how many token requests of grantType from clientID got a
// token.
func (o *OP) Grants(clientID, grantType string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.counts[clientID]; c != nil {
		return c.grants[grantType]
	}
	return 0
}

// session is what fosite stores with each grant. Token requests pass an
// empty one: fosite replaces it with the stored one for code and refresh.
func session(subject string) *fosite.DefaultSession {
	return &fosite.DefaultSession{Subject: subject, Username: subject}
}

// authorize is the authorization endpoint (RFC 6749 §4.1.1): fosite checks
// the client, redirect URI, response type, scopes, state and PKCE
// challenge; the fixed user approves everything asked for.
func (o *OP) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := o.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	resp, err := o.provider.NewAuthorizeResponse(ctx, ar, session(Subject))
	if err != nil {
		o.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	o.provider.WriteAuthorizeResponse(ctx, w, ar, resp) // 303 to redirect_uri?code=…&state=…
}

// token is the token endpoint (RFC 6749 §3.2).
func (o *OP) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := o.provider.NewAccessRequest(ctx, r, session(""))
	if err != nil {
		o.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// fosite's handler has checked them against the client's; granting
		// is the server's part, as in fosite's own examples.
		for _, scope := range ar.GetRequestedScopes() {
			ar.GrantScope(scope)
		}
	}
	resp, err := o.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		o.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	o.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// introspect is RFC 7662 introspection; the caller authenticates as a client
// (HTTP Basic) or with an active access token of its own.
func (o *OP) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := o.provider.NewIntrospectionRequest(ctx, r, session(""))
	if err != nil {
		o.provider.WriteIntrospectionError(ctx, w, err) // {"active":false} for a dead token
		return
	}
	o.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// revoke is RFC 7009 revocation.
func (o *OP) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	o.provider.WriteRevocationResponse(ctx, w, o.provider.NewRevocationRequest(ctx, r))
}

// count records, before fosite sees a token request, which client presented
// which refresh token (as a hash) and whether it had been presented before;
// after, which grant got a token.
func (o *OP) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil { // fosite reads r.PostForm, which this fills
			next.ServeHTTP(w, r)
			return
		}
		form := r.PostForm
		clientID := form.Get("client_id")
		if id, _, ok := r.BasicAuth(); ok {
			clientID, _ = url.QueryUnescape(id) // RFC 6749 §2.3.1 form-encodes it
		}
		grant := form.Get("grant_type")
		if grant == "refresh_token" {
			sum := sha256.Sum256([]byte(form.Get("refresh_token")))
			o.mu.Lock()
			if c := o.counts[clientID]; c != nil {
				c.refreshPresented++
				if o.seen[sum] {
					c.refreshReused++
				}
			}
			o.seen[sum] = true
			o.mu.Unlock()
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusOK {
			o.mu.Lock()
			if c := o.counts[clientID]; c != nil {
				c.grants[grant]++
			}
			o.mu.Unlock()
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// memoryStore is fosite's MemoryStore, made safe for concurrent use where it
// is not: its RevokeRefreshToken (run by every rotation and on reuse)
// rewrites the RefreshTokens map holding only refreshTokenRequestIDsMutex,
// while GetRefreshTokenSession and DeleteRefreshTokenSession hold only
// refreshTokensMutex. Introspecting a revoked access token (fosite then tries
// the refresh-token table) while a refresh rotates is a data race. One more
// lock orders those calls; what they do is fosite's, unchanged.
type memoryStore struct {
	*storage.MemoryStore
	refresh sync.RWMutex
}

func (s *memoryStore) GetRefreshTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	s.refresh.RLock()
	defer s.refresh.RUnlock()
	return s.MemoryStore.GetRefreshTokenSession(ctx, signature, sess)
}

func (s *memoryStore) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	s.refresh.Lock()
	defer s.refresh.Unlock()
	return s.MemoryStore.DeleteRefreshTokenSession(ctx, signature)
}

func (s *memoryStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	s.refresh.Lock()
	defer s.refresh.Unlock()
	return s.MemoryStore.RevokeRefreshToken(ctx, requestID)
}

func (s *memoryStore) RotateRefreshToken(ctx context.Context, requestID, refreshTokenSignature string) error {
	s.refresh.Lock()
	defer s.refresh.Unlock()
	return s.MemoryStore.RotateRefreshToken(ctx, requestID, refreshTokenSignature)
}
