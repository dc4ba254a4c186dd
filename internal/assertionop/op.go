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
// token's id by decrypting it; what it leaves to its storage, this one
// decides (keyStore.ValidateTokenExchangeRequest).
package assertionop

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	srv      *httptest.Server
	store    *keyStore
	crypto   op.Crypto
}

// Start runs an OP on a loopback port; Close stops it.
func Start() (*OP, error) {
	o := &OP{store: &keyStore{clients: map[string]*client{}, issued: map[string]issuedToken{}, scopes: map[string][]string{}}}
	o.srv = httptest.NewUnstartedServer(nil)
	o.srv.Start()
	o.Issuer = o.srv.URL
	key := sha256.Sum256([]byte("assertionop"))
	o.crypto = op.NewAES256GCMCrypto(key, "k1")
	o.store.Storage = storage.NewStorage(storage.NewUserStore(o.Issuer))
	provider, err := op.NewProvider(&op.Config{CryptoKey: key, CryptoKeyId: "k1", AuthMethodPrivateKeyJWT: true},
		o.store, op.StaticIssuer(o.Issuer), op.WithAllowInsecure())
	if err != nil {
		o.srv.Close()
		return nil, fmt.Errorf("assertionop: %w", err)
	}
	s := &server{LegacyServer: op.NewLegacyServer(provider, provider.Endpoints()), provider: provider}
	o.srv.Config.Handler = op.RegisterLegacyServer(s, op.AuthorizeCallbackHandler(provider))
	o.TokenURL = provider.TokenEndpoint().Absolute(o.Issuer)
	return o, nil
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

// Subject reports whom accessToken was issued to, if this OP issued it.
func (o *OP) Subject(accessToken string) (string, bool) {
	plain, err := o.crypto.Decrypt(accessToken)
	if err != nil {
		return "", false
	}
	id, subject, _ := strings.Cut(plain, ":")
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return subject, o.store.issued[id].subject == subject
}

// Audiences are the audiences an access token this OP issued was issued for.
func (o *OP) Audiences(accessToken string) []string {
	plain, err := o.crypto.Decrypt(accessToken)
	if err != nil {
		return nil
	}
	id, _, _ := strings.Cut(plain, ":")
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return o.store.issued[id].audience
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
	exchange bool
	targets  []string
}

// issuedToken is what the OP issued an access token for.
type issuedToken struct {
	subject  string
	audience []string
	expires  time.Time
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
// access token this OP issued that has not expired (zitadel only decrypts
// it), an access token is issued unless another type is asked (which is
// refused), and the audiences, resources and scopes must be allowed. The
// example storage's own (impersonation by admin users) is not used.
func (k *keyStore) ValidateTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) error {
	k.mu.Lock()
	on, targets := k.exchange, k.targets
	valid := func(id string) bool { t, ok := k.issued[id]; return ok && time.Now().Before(t.expires) }
	subjectOK := valid(r.GetExchangeSubjectTokenIDOrToken())
	actorOK := r.GetExchangeActorTokenIDOrToken() == "" || valid(r.GetExchangeActorTokenIDOrToken())
	k.mu.Unlock()
	switch {
	case !on:
		return oidc.ErrUnauthorizedClient().WithDescription("token exchange is not enabled")
	case r.GetExchangeSubjectTokenType() != oidc.AccessTokenType || !subjectOK:
		return oidc.ErrInvalidRequest().WithDescription("subject_token is not a valid access token of this OP")
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
		k.issued[id] = issuedToken{subject: r.GetSubject(), audience: r.GetAudience(), expires: exp}
		k.mu.Unlock()
	}
	return id, exp, err
}

// client is a private_key_jwt client and JWT profile service user.
type client struct {
	id      string
	keys    []jose.JSONWebKey
	jwksURL string
	hc      *http.Client
	store   *keyStore // whether token exchange is on
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

func (c *client) GetID() string                        { return c.id }
func (c *client) RedirectURIs() []string               { return nil }
func (c *client) PostLogoutRedirectURIs() []string     { return nil }
func (c *client) ApplicationType() op.ApplicationType  { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodPrivateKeyJWT }
func (c *client) ResponseTypes() []oidc.ResponseType   { return nil }
func (c *client) LoginURL(string) string               { return "" }
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
	if c.store.exchange {
		grants = append(grants, oidc.GrantTypeTokenExchange)
	}
	return grants
}
