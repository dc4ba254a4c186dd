//go:build e2e

package e2e

// A real OpenID provider and a real browser for the onboarding tests
// (browser_test.go, device_test.go): zitadel/oidc's example OP (an
// OpenID-certified library, with its own login and device pages) on loopback,
// and headless Chromium driven by chromedp.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The OP's users and clients. A user's id equals its name, so tokens of
// both flows name a subject the OP's introspection finds. alice is the user
// the single-user tests sign in as; bob is a second account (self_test.go).
const (
	opUser         = "alice"
	opPassword     = "alice-password-7d1e"
	opUserEmail    = "alice@example.com"
	opBob          = "bob"
	opBobPassword  = "bob-password-3c8a"
	opBobEmail     = "bob@example.org"
	opWebClient    = "vault-web"
	opDeviceClient = "vault-device"
	opClientSecret = "op-client-secret-4b9f"
)

// OP is a running zitadel example OpenID provider.
type OP struct {
	t       *testing.T
	Issuer  string // http://127.0.0.1:port/
	srv     *http.Server
	revoked *revocations
}

// Revocation is one token the OP's revocation endpoint (RFC 7009) ended.
type Revocation struct {
	Subject, Client string
	Refresh         bool // a live refresh token (the example storage then ends its access token too)
}

// revocations records what the OP revoked, for the tests to check.
type revocations struct {
	mu   sync.Mutex
	list []Revocation
}

// Revocations are the tokens the OP has revoked so far, oldest first.
func (o *OP) Revocations() []Revocation {
	o.revoked.mu.Lock()
	defer o.revoked.mu.Unlock()
	return append([]Revocation(nil), o.revoked.list...)
}

// StartOP starts the OP on a free loopback port. The web client (code flow,
// refresh tokens, HTTP Basic) accepts redirectURIs; the device client does
// the device flow with refresh tokens.
func StartOP(t *testing.T, redirectURIs ...string) *OP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := fmt.Sprintf("http://%s/", ln.Addr())
	users := filepath.Join(t.TempDir(), "users.json")
	data, _ := json.Marshal(map[string]map[string]any{
		opUser: {"ID": opUser, "Username": opUser, "Password": opPassword,
			"FirstName": "Alice", "LastName": "Tester", "Email": opUserEmail, "EmailVerified": true},
		opBob: {"ID": opBob, "Username": opBob, "Password": opBobPassword,
			"FirstName": "Bob", "LastName": "Tester", "Email": opBobEmail, "EmailVerified": true},
	})
	if err := os.WriteFile(users, data, 0o600); err != nil {
		t.Fatal(err)
	}
	userStore, err := storage.StoreFromFile(users)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*storage.Client{
		opWebClient:    storage.WebClient(opWebClient, opClientSecret, redirectURIs...),
		opDeviceClient: storage.DeviceClient(opDeviceClient, opClientSecret),
	}
	revoked := &revocations{}
	store := deviceRefreshStorage{storage.NewStorageWithClients(userStore, clients), revoked}
	o := &OP{t: t, Issuer: issuer, revoked: revoked,
		srv: &http.Server{Handler: exampleop.SetupServer(issuer, store, nil, false), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = o.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.Shutdown(ctx)
	})
	return o
}

// deviceRefreshStorage gives the example's device client the refresh grant
// too, so a device-authorized chain can rotate like a browser-authorized one,
// and records the tokens the OP revokes.
type deviceRefreshStorage struct {
	*storage.Storage
	revoked *revocations
}

// RevokeToken records a revocation the example storage carried out. The
// revocation endpoint passes a refresh token's id (equal to the token in the
// example storage) after finding it, or an access token's id.
func (s deviceRefreshStorage) RevokeToken(ctx context.Context, tokenIDOrToken, userID, clientID string) *oidc.Error {
	_, _, notRefresh := s.Storage.GetRefreshTokenInfo(ctx, clientID, tokenIDOrToken)
	if err := s.Storage.RevokeToken(ctx, tokenIDOrToken, userID, clientID); err != nil {
		return err
	}
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	s.revoked.list = append(s.revoked.list, Revocation{Subject: userID, Client: clientID, Refresh: notRefresh == nil})
	return nil
}

func (s deviceRefreshStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil || id != opDeviceClient {
		return c, err
	}
	return refreshingClient{c}, nil
}

// TokenRequestByRefreshToken names the device client for a refresh token
// that names none: the example storage records device-flow refresh tokens
// without their client (its getInfoFromRequest knows code and refresh
// requests only), and would refuse them for the client mismatch.
func (s deviceRefreshStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil || r.GetClientID() != "" {
		return r, err
	}
	return deviceRefreshRequest{r}, nil
}

type deviceRefreshRequest struct{ op.RefreshTokenRequest }

func (deviceRefreshRequest) GetClientID() string { return opDeviceClient }

type refreshingClient struct{ op.Client }

func (c refreshingClient) GrantTypes() []oidc.GrantType {
	return append(c.Client.GrantTypes(), oidc.GrantTypeRefreshToken)
}

// Active asks the OP's introspection endpoint (RFC 7662) whether token is
// active, authenticating as client.
func (o *OP) Active(client, token string) bool {
	o.t.Helper()
	return o.Introspect(client, token).Active
}

// Introspection is what the OP's introspection endpoint says of a token.
type Introspection struct {
	Active  bool   `json:"active"`
	Subject string `json:"sub"` // the user's id (its name here); with the openid scope
	Email   string `json:"email"`
}

// Introspect asks the OP's introspection endpoint (RFC 7662) about token,
// authenticating as client.
func (o *OP) Introspect(client, token string) Introspection {
	o.t.Helper()
	resp := o.post("oauth/introspect", client, url.Values{"token": {token}})
	defer resp.Body.Close()
	var out Introspection
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		o.t.Fatalf("introspection answered HTTP %d", resp.StatusCode)
	}
	return out
}

// post sends form to the OP's path, authenticating as client with HTTP Basic.
func (o *OP) post(path, client string, form url.Values) *http.Response {
	o.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, opClientSecret)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		o.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// Redeem posts an authorization code to the OP's token endpoint as the web
// client would, with verifier, and returns the HTTP status and body.
func (o *OP) Redeem(code, redirectURI, verifier string) (int, string) {
	o.t.Helper()
	resp := o.post("oauth/token", opWebClient, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}})
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body)
}

// sharedSteps returns a runner of scenarios, each a subtest, that share one
// Vault, provider and browser: failures are reported by the scenario's own t.
func sharedSteps(t *testing.T, v *Vault, o *OP, b *Browser) func(name string, f func(t *testing.T)) {
	return func(name string, f func(t *testing.T)) {
		t.Run(name, func(st *testing.T) {
			v.t, o.t, b.t = st, st, st
			defer func() { v.t, o.t, b.t = t, t, t }()
			f(st)
		})
	}
}

// vaultData runs a vault CLI command with -format=json and returns .data.
func vaultData(v *Vault, args ...string) map[string]any {
	v.t.Helper()
	out := v.JSON(append(args[:1:1], append([]string{"-format=json"}, args[1:]...)...)...)
	data, _ := out["data"].(map[string]any)
	if data == nil {
		v.t.Fatalf("vault %s: no data in %v", strings.Join(args, " "), out)
	}
	return data
}
