// Package assertionop runs a real OpenID provider, zitadel/oidc's (an
// OpenID-certified implementation nobody here wrote), on loopback for tests:
// its clients authenticate by private_key_jwt (RFC 7523 §2.2) and its
// service users use the JWT profile grant (RFC 7523 §2.1). Their public keys
// are registered as JWKs, or fetched from a JWKS URL (tokenbroker's
// unauthenticated jwks/<name>) on each verification. zitadel checks every
// assertion: signature, aud (its issuer), iat, exp, iss = sub.
//
// A test may bound a client's scopes (AllowScopes) and turn on RFC 8693
// token exchange (EnableTokenExchange): zitadel's op.TokenExchange parses
// and routes the grant, authenticates the client and finds the subject
// token's id by decrypting it (or verifies a subject ID token); what it
// leaves to its storage, this one decides (keyStore.ValidateTokenExchangeRequest).
//
// A client given a redirect URI (AddRedirectURI) may also connect a user
// (the authorization code grant, OpenID Connect Core §3.1): Authorize plays
// the browser and the user, who logs in at once. With offline_access the OP
// issues a refresh token, and refreshes it as zitadel's op does: it checks a
// narrowed request's scope is within the grant (RFC 6749 §6), issues an ID
// token beside each access token, and leaves the rest to this storage. The
// refresh tokens are this storage's own, not the example storage's: that
// one hands zitadel the stored grant itself, so a refresh narrowed by scope
// narrows the new refresh token too, where RFC 6749 §6 wants the original
// scope kept. Here a refresh token is single-use (a spent one is
// invalid_grant) and keeps its grant's scope; EndPreviousOnRefresh makes a
// refresh end the access token of the refresh token it spends, as the
// example storage does (and Ory's fosite).
package assertionop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OP is a running provider.
type OP struct {
	Issuer   string // http://127.0.0.1:port, the aud of every assertion
	TokenURL string
	AuthURL  string // the authorization endpoint
	srv      *httptest.Server
	store    *keyStore
	crypto   op.Crypto
}

// Start runs an OP on a loopback port; Close stops it.
func Start() (*OP, error) {
	o := &OP{store: &keyStore{clients: map[string]*client{}, issued: map[string]issuedToken{}, scopes: map[string][]string{},
		refresh: map[string]*storage.RefreshToken{}}}
	o.srv = httptest.NewUnstartedServer(nil)
	o.srv.Start()
	o.Issuer = o.srv.URL
	key := sha256.Sum256([]byte("assertionop"))
	o.crypto = op.NewAES256GCMCrypto(key, "k1")
	o.store.Storage = storage.NewStorage(storage.NewUserStore(o.Issuer))
	provider, err := op.NewProvider(&op.Config{CryptoKey: key, CryptoKeyId: "k1", AuthMethodPrivateKeyJWT: true, GrantTypeRefreshToken: true},
		o.store, op.StaticIssuer(o.Issuer), op.WithAllowInsecure())
	if err != nil {
		o.srv.Close()
		return nil, fmt.Errorf("assertionop: %w", err)
	}
	s := &server{LegacyServer: op.NewLegacyServer(provider, provider.Endpoints()), provider: provider}
	mux := http.NewServeMux()
	mux.Handle("/", op.RegisterLegacyServer(s, op.AuthorizeCallbackHandler(provider)))
	mux.HandleFunc(loginPath, func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if err := o.store.CheckUsernamePassword(o.Username(), password, id); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, op.AuthCallbackURL(provider)(op.ContextWithIssuer(r.Context(), o.Issuer), id), http.StatusFound)
	})
	o.srv.Config.Handler = mux
	o.TokenURL = provider.TokenEndpoint().Absolute(o.Issuer)
	o.AuthURL = provider.AuthorizationEndpoint().Absolute(o.Issuer)
	o.store.loginURL = o.Issuer + loginPath + "?id="
	return o, nil
}

// The login: the example storage's first user, who logs in without a page.
const (
	loginPath = "/login"
	password  = "verysecure"
)

// Username is the user Authorize logs in as (the example storage's
// test-user@<host>, subject "id1").
func (o *OP) Username() string {
	u, _ := url.Parse(o.Issuer)
	return "test-user@" + u.Hostname()
}

// AddRedirectURI lets client id connect users (authorization code,
// refresh token) with uri as its redirect URI.
func (o *OP) AddRedirectURI(id, uri string) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	if c := o.store.clients[id]; c != nil {
		c.redirects = append(c.redirects, uri)
	}
}

// Authorize plays the browser at authURL (the OP's authorization endpoint
// with a client's request) and the user, who logs in and consents: it
// follows the OP's redirects and returns the URL the OP sends the browser
// back to, the client's redirect URI with code and state (or an error).
func (o *OP) Authorize(authURL string) (string, error) {
	next := authURL
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 5 {
		resp, err := client.Get(next)
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		location, err := resp.Location()
		if err != nil {
			return "", fmt.Errorf("authorize: HTTP %d without a redirect: %s", resp.StatusCode, body)
		}
		if next = location.String(); !strings.HasPrefix(next, o.Issuer+"/") {
			return next, nil
		}
	}
	return "", errors.New("authorize: too many redirects within the OP")
}

// EndPreviousOnRefresh sets whether a refresh ends the access token issued
// with the refresh token it spends.
func (o *OP) EndPreviousOnRefresh(end bool) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	o.store.endPrevious = end
}

// Active reports whether accessToken was issued by this OP and has neither
// expired nor been ended.
func (o *OP) Active(accessToken string) bool {
	t, ok := o.issuedToken(accessToken)
	return ok && !t.ended && time.Now().Before(t.expires)
}

// Scopes are the scopes an access token this OP issued was issued for.
func (o *OP) Scopes(accessToken string) []string {
	t, _ := o.issuedToken(accessToken)
	return t.scopes
}

// RefreshScopes are the scopes of the grant refreshToken continues (nil:
// no such refresh token, or it is spent).
func (o *OP) RefreshScopes(refreshToken string) []string {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	if rt := o.store.refresh[refreshToken]; rt != nil {
		return rt.Scopes
	}
	return nil
}

// issuedToken is what accessToken (zitadel's encrypted "id:subject") was
// issued for, if this OP issued it.
func (o *OP) issuedToken(accessToken string) (issuedToken, bool) {
	plain, err := o.crypto.Decrypt(accessToken)
	if err != nil {
		return issuedToken{}, false
	}
	id, subject, _ := strings.Cut(plain, ":")
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	t, ok := o.store.issued[id]
	return t, ok && t.subject == subject
}

// Close stops the OP.
func (o *OP) Close() { o.srv.Close() }

// AddClient registers a client (or service user) id whose assertions the
// keys verify.
func (o *OP) AddClient(id string, keys ...jose.JSONWebKey) {
	o.store.add(&client{id: id, keys: keys, store: o.store})
}

// AddClientJWKS registers a client whose keys are fetched from jwksURL
// (with hc) each time one of its assertions is verified.
func (o *OP) AddClientJWKS(id, jwksURL string, hc *http.Client) {
	o.store.add(&client{id: id, jwksURL: jwksURL, hc: hc, store: o.store})
}

// AllowScopes bounds the scopes client id may ask for by client
// credentials, the JWT profile grant or token exchange: another is refused
// with invalid_scope (RFC 6749 §5.2). Without, every scope asked is granted.
func (o *OP) AllowScopes(id string, scopes ...string) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	o.store.scopes[id] = scopes
}

// EnableTokenExchange lets every client exchange (RFC 8693) an access
// token this OP issued and that has not expired for an access token for
// audiences and resources among targets (another is invalid_target,
// RFC 8693 §2.2.2). Without it, clients are not allowed the grant
// (zitadel answers unauthorized_client).
func (o *OP) EnableTokenExchange(targets ...string) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	o.store.exchange, o.store.targets = true, targets
}

// ExchangeSubjectTypes are the subject_token_type of each token exchange
// asked so far, in turn.
func (o *OP) ExchangeSubjectTypes() []string {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return slices.Clone(o.store.subjectTypes)
}

// Subject reports whom accessToken was issued to, if this OP issued it.
func (o *OP) Subject(accessToken string) (string, bool) {
	t, ok := o.issuedToken(accessToken)
	return t.subject, ok
}

// Audiences are the audiences an access token this OP issued was issued for.
func (o *OP) Audiences(accessToken string) []string {
	t, _ := o.issuedToken(accessToken)
	return t.audience
}

// server is zitadel's LegacyServer, except that the client_credentials
// grant also takes private_key_jwt clients: the legacy server asks its
// storage for a client secret there. The assertion is checked by zitadel's
// own AuthorizePrivateJWTKey, as for every other grant.
type server struct {
	*op.LegacyServer
	provider *op.Provider
}

func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientAssertionType == oidc.ClientAssertionTypeJWTAssertion {
		return op.AuthorizePrivateJWTKey(ctx, r.Data.ClientAssertion, s.provider)
	}
	return s.LegacyServer.VerifyClient(ctx, r)
}

// keyStore is the example storage with our clients and their keys.
type keyStore struct {
	*storage.Storage
	mu      sync.Mutex
	clients map[string]*client
	issued  map[string]issuedToken // by access token id
	scopes  map[string][]string    // a client's allowed scopes (AllowScopes)
	// exchange: token exchange is on, for targets (EnableTokenExchange).
	exchange     bool
	targets      []string
	subjectTypes []string // of each exchange asked, in turn
	// refresh: the live refresh tokens; endPrevious: EndPreviousOnRefresh.
	refresh     map[string]*storage.RefreshToken
	endPrevious bool
	loginURL    string // + an auth request's id
}

// issuedToken is what the OP issued an access token for.
type issuedToken struct {
	subject  string
	audience []string
	scopes   []string
	expires  time.Time
	ended    bool // by a refresh, under EndPreviousOnRefresh
}

func (k *keyStore) add(c *client) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.clients[c.id] = c
}

func (k *keyStore) client(id string) (*client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.clients[id]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("client %q not found", id)
}

func (k *keyStore) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if c, err := k.client(id); err == nil {
		return c, nil
	}
	return k.Storage.GetClientByClientID(ctx, id)
}

// GetKeyByIDAndClientID finds the key that verifies a client's assertion.
func (k *keyStore) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, err := k.client(clientID)
	if err != nil {
		return nil, err
	}
	keys := c.keys
	if c.jwksURL != "" {
		if keys, err = c.fetch(ctx); err != nil {
			return nil, err
		}
	}
	for _, key := range keys {
		if key.KeyID == keyID {
			return &key, nil
		}
	}
	return nil, fmt.Errorf("no key %q for client %q", keyID, clientID)
}

func (k *keyStore) ClientCredentials(context.Context, string, string) (op.Client, error) {
	return nil, errors.New("client secrets are not accepted here")
}

func (k *keyStore) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	if err := k.scopesAllowed(id, scopes); err != nil {
		return nil, err
	}
	return &oidc.JWTTokenRequest{Subject: id, Audience: []string{id}, Scopes: scopes}, nil
}

// ValidateJWTProfileScopes grants the scopes asked for, within AllowScopes.
func (k *keyStore) ValidateJWTProfileScopes(_ context.Context, id string, scopes []string) ([]string, error) {
	if err := k.scopesAllowed(id, scopes); err != nil {
		return nil, err
	}
	return scopes, nil
}

// scopesAllowed refuses a scope outside id's AllowScopes.
func (k *keyStore) scopesAllowed(id string, scopes []string) error {
	k.mu.Lock()
	allowed, bounded := k.scopes[id]
	k.mu.Unlock()
	for _, s := range scopes {
		if bounded && !slices.Contains(allowed, s) {
			return oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for %s", s, id)
		}
	}
	return nil
}

// ValidateTokenExchangeRequest (op.TokenExchangeStorage) decides what
// zitadel leaves to its storage: the subject (and actor) token must be an
// access token this OP issued that has not expired or ended (zitadel only
// decrypts it), or a subject ID token (zitadel verified it); an access
// token is issued unless another type is asked (which is refused); and the
// audiences, resources and scopes must be allowed. The example storage's
// own (impersonation by admin users) is not used.
func (k *keyStore) ValidateTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) error {
	k.mu.Lock()
	on, targets := k.exchange, k.targets
	valid := func(id string) bool { t, ok := k.issued[id]; return ok && !t.ended && time.Now().Before(t.expires) }
	// An access token this OP issued, or an ID token zitadel verified
	// (signed by this OP, not expired).
	subjectOK := r.GetExchangeSubjectTokenType() == oidc.AccessTokenType && valid(r.GetExchangeSubjectTokenIDOrToken()) ||
		r.GetExchangeSubjectTokenType() == oidc.IDTokenType
	actorOK := r.GetExchangeActorTokenIDOrToken() == "" || valid(r.GetExchangeActorTokenIDOrToken())
	k.subjectTypes = append(k.subjectTypes, string(r.GetExchangeSubjectTokenType()))
	k.mu.Unlock()
	switch {
	case !on:
		return oidc.ErrUnauthorizedClient().WithDescription("token exchange is not enabled")
	case !subjectOK:
		return oidc.ErrInvalidRequest().WithDescription("subject_token is not a valid access token or ID token of this OP")
	case r.GetExchangeActorTokenIDOrToken() != "" && (r.GetExchangeActorTokenType() != oidc.AccessTokenType || !actorOK):
		return oidc.ErrInvalidRequest().WithDescription("actor_token is not a valid access token of this OP")
	case r.GetRequestedTokenType() == "":
		r.SetRequestedTokenType(oidc.AccessTokenType)
	case r.GetRequestedTokenType() != oidc.AccessTokenType:
		return oidc.ErrInvalidRequest().WithDescription("requested_token_type %s is not issued here", r.GetRequestedTokenType())
	}
	for _, t := range slices.Concat(r.GetAudience(), r.GetResourses()) {
		if !slices.Contains(targets, t) {
			return oidc.ErrInvalidTarget().WithDescription("%q is not an allowed audience or resource", t)
		}
	}
	return k.scopesAllowed(r.GetClientID(), r.GetScopes())
}

// CreateTokenExchangeRequest (op.TokenExchangeStorage) keeps nothing.
func (k *keyStore) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil
}

// CreateAccessToken records which tokens were issued, for Subject,
// Audiences and token exchange.
func (k *keyStore) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	id, exp, err := k.Storage.CreateAccessToken(ctx, r)
	if err == nil {
		k.mu.Lock()
		k.issued[id] = issuedToken{subject: r.GetSubject(), audience: r.GetAudience(), scopes: r.GetScopes(), expires: exp}
		k.mu.Unlock()
	}
	return id, exp, err
}

// TokenRequestByRefreshToken (op.Storage) finds the grant a live refresh
// token continues. zitadel narrows the request it returns to a refresh's
// scope (SetCurrentScopes): it gets a copy, so the grant keeps its own.
func (k *keyStore) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rt := k.refresh[token]
	if rt == nil || !time.Now().Before(rt.Expiration) {
		return nil, errors.New("invalid refresh_token")
	}
	grant := *rt
	grant.Scopes = slices.Clone(rt.Scopes)
	return storage.RefreshTokenRequestFromBusiness(&grant), nil
}

// CreateAccessAndRefreshTokens (op.Storage) issues an access token and a
// refresh token for a user's authorization (current == "") or a refresh,
// which spends current. The new refresh token keeps the grant's scope
// whatever the refresh asked (RFC 6749 §6). Exchanges for a refresh token
// are the example storage's.
func (k *keyStore) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	if _, ok := r.(op.TokenExchangeRequest); ok {
		return k.Storage.CreateAccessAndRefreshTokens(ctx, r, current)
	}
	var grant storage.RefreshToken
	if current == "" {
		ar, ok := r.(op.AuthRequest)
		if !ok {
			return "", "", time.Time{}, fmt.Errorf("no refresh token for a %T", r)
		}
		grant = storage.RefreshToken{ApplicationID: ar.GetClientID(), UserID: ar.GetSubject(), Audience: ar.GetAudience(),
			Scopes: slices.Clone(ar.GetScopes()), AuthTime: ar.GetAuthTime(), AMR: ar.GetAMR()}
	} else {
		k.mu.Lock()
		spent := k.refresh[current]
		delete(k.refresh, current)
		if spent != nil && k.endPrevious {
			t := k.issued[spent.AccessToken]
			t.ended = true
			k.issued[spent.AccessToken] = t
		}
		k.mu.Unlock()
		if spent == nil { // spent meanwhile by a concurrent refresh
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
		}
		grant = *spent
	}
	id, exp, err := k.CreateAccessToken(ctx, r)
	if err != nil {
		return "", "", time.Time{}, err
	}
	var b [16]byte
	rand.Read(b[:])
	grant.ID, grant.Token, grant.AccessToken = hex.EncodeToString(b[:]), hex.EncodeToString(b[:]), id
	grant.Expiration = time.Now().Add(5 * time.Hour)
	k.mu.Lock()
	k.refresh[grant.Token] = &grant
	k.mu.Unlock()
	return id, grant.Token, exp, nil
}

// client is a private_key_jwt client and JWT profile service user.
type client struct {
	id        string
	keys      []jose.JSONWebKey
	redirects []string // AddRedirectURI
	jwksURL   string
	hc        *http.Client
	store     *keyStore // whether token exchange is on
}

func (c *client) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the JWKS: HTTP %d %v", resp.StatusCode, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the JWKS: %w", err)
	}
	return set.Keys, nil
}

func (c *client) GetID() string { return c.id }
func (c *client) RedirectURIs() []string {
	c.store.mu.Lock()
	defer c.store.mu.Unlock()
	return slices.Clone(c.redirects)
}
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodPrivateKeyJWT }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) LoginURL(id string) string            { return c.store.loginURL + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) GrantTypes() []oidc.GrantType {
	grants := []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeBearer}
	c.store.mu.Lock()
	defer c.store.mu.Unlock()
	if len(c.redirects) > 0 {
		grants = append(grants, oidc.GrantTypeCode, oidc.GrantTypeRefreshToken)
	}
	if c.store.exchange {
		grants = append(grants, oidc.GrantTypeTokenExchange)
	}
	return grants
}
