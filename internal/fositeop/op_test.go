package fositeop

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testID       = "client-a"
	testSecret   = "secret-a-0123456789"
	testRedirect = "https://vault.example/v1/tokenbroker/callback"
)

func start(t *testing.T) *OP {
	t.Helper()
	o, err := Start(Options{AccessTokenLifespan: time.Minute, Clients: []Client{{ID: testID, Secret: testSecret, RedirectURI: testRedirect}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// tokenResponse is RFC 6749 §5.1's answer, or §5.2's error.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Error        string `json:"error"`
}

// post sends form to the token endpoint, by client_secret_basic or client_secret_post.
func post(t *testing.T, o *OP, form url.Values, basic bool) tokenResponse {
	t.Helper()
	if !basic {
		form.Set("client_id", testID)
		form.Set("client_secret", testSecret)
	}
	req, _ := http.NewRequest(http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(testID, testSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return tr
}

// connect runs the authorization code grant with PKCE S256 and returns its tokens.
func connect(t *testing.T, o *OP) tokenResponse {
	t.Helper()
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	verifier := base64.RawURLEncoding.EncodeToString(buf)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {testID}, "redirect_uri": {testRedirect},
		"scope": {"offline read"}, "state": {"state-0123456789"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(o.AuthURL + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), testRedirect+"?") {
		t.Fatalf("authorize = %d to %q, want 303 to %s", resp.StatusCode, loc, testRedirect)
	}
	if got := loc.Query().Get("state"); got != "state-0123456789" {
		t.Fatalf("state = %q, want it back", got)
	}
	return post(t, o, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {testRedirect}, "code_verifier": {verifier}}, false)
}

func introspect(t *testing.T, o *OP, token string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.IntrospectionURL, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testID, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("introspection = HTTP %d, want 200 and JSON", resp.StatusCode)
	}
	return out.Active
}

func TestClientCredentialsTokensLiveSideBySide(t *testing.T) {
	o := start(t)
	first := post(t, o, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, true)
	second := post(t, o, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, false)
	if first.AccessToken == "" || second.AccessToken == "" || first.RefreshToken != "" {
		t.Fatalf("client credentials: got access %t/%t refresh %t, want two access tokens and no refresh token",
			first.AccessToken != "", second.AccessToken != "", first.RefreshToken != "")
	}
	if first.ExpiresIn < 59 || first.ExpiresIn > 60 {
		t.Errorf("expires_in = %d, want 59..60", first.ExpiresIn)
	}
	for i, tok := range []string{first.AccessToken, second.AccessToken} {
		if !o.Active(tok) || !introspect(t, o, tok) {
			t.Errorf("token %d: active %t, introspection %t; want both active", i, o.Active(tok), introspect(t, o, tok))
		}
	}
	if got := o.Grants(testID, "client_credentials"); got != 2 {
		t.Errorf("client_credentials grants = %d, want 2", got)
	}
	if o.Active("not-a-token") || introspect(t, o, "not-a-token") {
		t.Errorf("an unknown token is active")
	}
}

func TestRefreshRevokesThePreviousTokenAndReuseTheFamily(t *testing.T) {
	o := start(t)
	first := connect(t, o)
	if first.AccessToken == "" || first.RefreshToken == "" {
		t.Fatalf("authorization code grant: access %t refresh %t, want both (scope offline)", first.AccessToken != "", first.RefreshToken != "")
	}
	second := post(t, o, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}, true)
	if second.AccessToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: error %q, want a new access and refresh token", second.Error)
	}
	if o.Active(first.AccessToken) || !o.Active(second.AccessToken) {
		t.Fatalf("after a refresh: previous active %t, new active %t; want false, true", o.Active(first.AccessToken), o.Active(second.AccessToken))
	}
	if p, r := o.RefreshTokens(testID); p != 1 || r != 0 {
		t.Fatalf("refresh tokens presented, reused = %d, %d; want 1, 0", p, r)
	}

	again := post(t, o, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}, false)
	if again.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: error %q, want invalid_grant", again.Error)
	}
	if o.Active(second.AccessToken) {
		t.Errorf("after reuse: the family's access token is still active")
	}
	if next := post(t, o, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}}, true); next.Error == "" {
		t.Errorf("after reuse: the family's refresh token still works")
	}
	if p, r := o.RefreshTokens(testID); p != 3 || r != 1 {
		t.Errorf("refresh tokens presented, reused = %d, %d; want 3, 1", p, r)
	}
	if got := o.Grants(testID, "refresh_token"); got != 1 {
		t.Errorf("refresh grants = %d, want 1", got)
	}
}

func TestAuthorizationCodeNeedsPKCE(t *testing.T) {
	o := start(t)
	q := url.Values{"response_type": {"code"}, "client_id": {testID}, "redirect_uri": {testRedirect},
		"scope": {"offline"}, "state": {"state-0123456789"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(o.AuthURL + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if got := loc.Query().Get("error"); got != "invalid_request" || loc.Query().Get("code") != "" {
		t.Fatalf("authorize without PKCE: error %q, code given %t; want invalid_request and no code", got, loc.Query().Get("code") != "")
	}
}

// TestIntrospectionDuringRotationIsSafe introspects revoked tokens while the
// chain rotates: on fosite's bare MemoryStore, -race reports the two
// touching its refresh-token table at once (see memoryStore).
func TestIntrospectionDuringRotationIsSafe(t *testing.T) {
	o := start(t)
	tr := connect(t, o)
	spent := make(chan string, 32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range spent {
			for range 20 {
				if o.Active(tok) {
					t.Errorf("a token revoked by a rotation is active")
					return
				}
			}
		}
	}()
	for range 20 {
		next := post(t, o, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, true)
		if next.RefreshToken == "" {
			t.Fatalf("refresh: error %q", next.Error)
		}
		spent <- tr.AccessToken
		tr = next
	}
	close(spent)
	<-done
	if p, r := o.RefreshTokens(testID); p != 20 || r != 0 {
		t.Errorf("refresh tokens presented, reused = %d, %d; want 20, 0", p, r)
	}
}
