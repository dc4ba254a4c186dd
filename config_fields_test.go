package tokenbroker

// The config field table (config_fields.go): each row's declared change
// effect is what a change does, every row is documented in the README, and
// every schema says what it is.

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestConfigFieldChangeEffects: for every row, a config of a kind the field
// applies to serves a token, a write changes the field alone, and the token
// state in storage shows the effect the field must have (and the row declares): dropped (no state, or a
// new seed's), the access token dropped with the chain kept, or untouched.
func TestConfigFieldChangeEffects(t *testing.T) {
	e := newEnv(t)
	base := e.fake.URL()
	oauth2 := map[string]any{"provider": "oauth2", "token_url": base + fakeprovider.PathOAuth2Token, "ca_pem": e.fake.CAPEM(),
		"client_id": testClientID, "client_secret": testClientSecret}
	oauth2JSON := withFields(oauth2, map[string]any{"provider": "oauth2_json", "token_url": base + fakeprovider.PathOAuth2JSONToken})
	apivideo := map[string]any{"provider": "apivideo", "token_url": base + fakeprovider.APIVideo.TokenPath(), "ca_pem": e.fake.CAPEM(),
		"api_key": testAPIKey}
	signing := withFields(oauth2, map[string]any{"private_key": pkcs8PEM(testRSA)})
	e.fake.AddAssertionKey("77", "", &testRSA.PublicKey)
	e.fake.AddGitHubInstallation("77", "octo", false, 9, "dotfiles")
	githubApp := map[string]any{"provider": "github_app", "ca_pem": e.fake.CAPEM(), "api_url": base + fakeprovider.PathGitHubAPI,
		"app_id": "77", "installation_id": "9", "private_key": pkcs1PEM(testRSA)}
	serviceAccount := func(kid string, key *rsa.PrivateKey) string {
		return fmt.Sprintf(`{"type":"service_account","private_key_id":%q,"private_key":%q,"client_email":"sa@p.iam.gserviceaccount.com","token_uri":%q}`,
			kid, pkcs8PEM(key), base+fakeprovider.PathGoogleToken)
	}
	e.fake.AddAssertionKey("sa@p.iam.gserviceaccount.com", "sa-kid-1", &testRSA.PublicKey)
	google := map[string]any{"provider": "google", "ca_pem": e.fake.CAPEM(), "service_account_json": serviceAccount("sa-kid-1", testRSA), "scopes": "s"}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	// changes: for each field, the config it is changed on, the write that
	// changes it (and nothing another row compares), and what that must
	// drop. The effect is written here, not read from the row: the row's
	// effect is what the write does, so only an expectation of its own can
	// catch a wrong one. Secrets and keys keep the tokens: a rotated secret
	// or key authenticates the same client.
	changes := map[string]struct {
		config, write map[string]any
		want          changeEffect
	}{
		"provider":                 {oauth2, map[string]any{"provider": "oauth2_json"}, dropsTokenState},
		"token_url":                {oauth2, map[string]any{"token_url": base + "/other/token"}, dropsTokenState},
		"refresh_url":              {oauth2, map[string]any{"refresh_url": base + "/refresh"}, dropsTokenState},
		"client_id":                {oauth2, map[string]any{"client_id": "other-client"}, dropsTokenState},
		"client_secret":            {oauth2, map[string]any{"client_secret": "rotated-secret"}, keepsTokens},
		"client_secrets":           {oauth2, map[string]any{"client_secrets": "second-secret"}, keepsTokens},
		"api_key":                  {apivideo, map[string]any{"api_key": "other-api-key"}, dropsTokenState},
		"refresh_token":            {oauth2, map[string]any{"refresh_token": e.fake.SeedRefreshToken(fakeprovider.OAuth2, testClientID)}, dropsTokenState},
		"scopes":                   {oauth2, map[string]any{"scopes": "narrow"}, dropsAccessToken},
		"audience":                 {oauth2, map[string]any{"audience": "api"}, dropsAccessToken},
		"allowed_scopes":           {oauth2, map[string]any{"allowed_scopes": "read,write"}, keepsTokens},
		"allowed_audiences":        {oauth2, map[string]any{"allowed_audiences": "api"}, keepsTokens},
		"allowed_resources":        {oauth2, map[string]any{"allowed_resources": "https://api.example/"}, keepsTokens},
		"extra_params":             {oauth2, map[string]any{"extra_params": map[string]any{"resource": "r"}}, dropsAccessToken},
		"auth_style":               {oauth2, map[string]any{"auth_style": "body"}, dropsAccessToken},
		"encoding":                 {oauth2, map[string]any{"encoding": "json"}, dropsAccessToken},
		"refresh_ahead":            {oauth2, map[string]any{"refresh_ahead": 60}, keepsTokens},
		"default_ttl":              {oauth2, map[string]any{"default_ttl": "2h"}, keepsTokens},
		"timeout":                  {oauth2, map[string]any{"timeout": "10s"}, keepsTokens},
		"ca_pem":                   {oauth2, map[string]any{"ca_pem": e.fake.CAPEM() + "\n" + certPEM(t, testRSA)}, keepsTokens},
		"refresh_grant":            {oauth2JSON, map[string]any{"refresh_grant": "auto"}, keepsTokens},
		"revokes_previous_token":   {oauth2, map[string]any{"revokes_previous_token": "on_refresh"}, keepsTokens},
		"refresh_reuse_grace":      {oauth2, map[string]any{"refresh_reuse_grace": 30}, keepsTokens},
		"auth_url":                 {oauth2, map[string]any{"auth_url": base + fakeprovider.PathAuthorize}, keepsTokens},
		"device_authorization_url": {oauth2, map[string]any{"device_authorization_url": base + fakeprovider.PathDeviceAuthorization}, keepsTokens},
		"redirect_uri":             {oauth2, map[string]any{"redirect_uri": testRedirect}, keepsTokens},
		"pkce":                     {oauth2, map[string]any{"pkce": "off"}, keepsTokens},
		"auth_params":              {oauth2, map[string]any{"auth_params": map[string]any{"prompt": "consent"}}, keepsTokens},
		// Naming an issuer refills the URLs the write does not give: the
		// token URL is given, unchanged, so only the issuer's own effect shows.
		"issuer":         {oauth2, map[string]any{"issuer": base, "token_url": base + fakeprovider.PathOAuth2Token}, keepsTokens},
		"response_mode":  {oauth2, map[string]any{"response_mode": "query"}, keepsTokens},
		"revocation_url": {oauth2, map[string]any{"revocation_url": base + fakeprovider.PathRevoke}, keepsTokens},
		"userinfo_url":   {oauth2, map[string]any{"userinfo_url": base + fakeprovider.PathUserinfo}, keepsTokens},
		"identity_match": {withFields(oauth2, map[string]any{"userinfo_url": base + fakeprovider.PathUserinfo}), map[string]any{"identity_match": "email"}, keepsTokens},
		"tenant":         {oauth2, map[string]any{"tenant": "example.com"}, keepsTokens},
		"grant":          {signing, map[string]any{"grant": "jwt_bearer"}, dropsTokenState},
		"private_key":    {signing, map[string]any{"private_key": pkcs8PEM(testEC)}, keepsTokens},
		"generate_key":   {signing, map[string]any{"generate_key": "ec-p256"}, keepsTokens},
		// The same account (issuer and token URL) with a new key.
		"service_account_json": {google, map[string]any{"service_account_json": serviceAccount("sa-kid-2", otherRSA)}, keepsTokens},
		"certificate":          {signing, map[string]any{"certificate": certPEM(t, testRSA)}, keepsTokens},
		"key_id":               {signing, map[string]any{"key_id": "kid-2"}, keepsTokens},
		"signing_alg":          {signing, map[string]any{"signing_alg": "PS256"}, keepsTokens},
		"assertion_issuer":     {signing, map[string]any{"assertion_issuer": "iss-2"}, dropsTokenState},
		"assertion_subject":    {signing, map[string]any{"assertion_subject": "sub-2"}, dropsTokenState},
		"assertion_audience":   {signing, map[string]any{"assertion_audience": "aud-2"}, dropsTokenState},
		"assertion_ttl":        {signing, map[string]any{"assertion_ttl": "1m"}, keepsTokens},
		"assertion_claims":     {signing, map[string]any{"assertion_claims": map[string]any{"tid": "t1"}}, dropsAccessToken},
		"app_id":               {githubApp, map[string]any{"app_id": "78"}, dropsTokenState},
		"installation_id":      {githubApp, map[string]any{"installation_id": "10"}, dropsTokenState},
		"installation_owner":   {githubApp, map[string]any{"installation_owner": "octo", "installation_id": "9"}, dropsTokenState},
		"api_url":              {githubApp, map[string]any{"api_url": base + fakeprovider.PathGitHubAPI + "/v2"}, dropsTokenState},
		"repositories":         {githubApp, map[string]any{"repositories": "dotfiles"}, dropsAccessToken},
		"repository_ids":       {githubApp, map[string]any{"repository_ids": []int{9}}, dropsAccessToken},
		"permissions":          {githubApp, map[string]any{"permissions": "contents=read"}, dropsAccessToken},
	}
	for _, f := range configFieldTable {
		if f.step == asConnection {
			continue // a connection's app is fixed: TestConnectionWritesRefused
		}
		t.Run(f.name, func(t *testing.T) {
			c, ok := changes[f.name]
			if !ok {
				t.Fatalf("no change of %s: add one to this test", f.name)
			}
			if _, ok := c.write[f.name]; !ok {
				t.Fatalf("the change of %s does not write it: %v", f.name, c.write)
			}
			name := "effect-" + f.name
			e.mustDo(logical.CreateOperation, "config/"+name, c.config)
			e.token(name)
			before := e.storedState(name)
			e.mustDo(logical.UpdateOperation, "config/"+name, c.write)
			if f.effect != c.want {
				t.Errorf("the %s row says a change %s, want it %s", f.name, f.effect, c.want)
			}
			if got := observedEffect(before, e.storedState(name)); got != c.want.String() {
				t.Errorf("changing %s %s, want it %s", f.name, got, c.want)
			}
		})
	}
}

// observedEffect says what a config write did to a token state: before
// holds an access token, after is what storage holds now.
func observedEffect(before, after *tokenState) string {
	switch {
	case after == nil || after.AccessToken == "" && after.RefreshToken != before.RefreshToken:
		return dropsTokenState.String() // none left, or a new seed's
	case after.AccessToken == "":
		return dropsAccessToken.String()
	case after.AccessToken == before.AccessToken && after.RefreshToken == before.RefreshToken:
		return keepsTokens.String()
	}
	return "replaced the access token"
}

// TestConfigFieldsInREADME: the README's config field table names every
// field of the table, and no field that is not one.
func TestConfigFieldsInREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## Config fields: `tokenbroker/config/<name>`")
	section, _, _ = strings.Cut(section, "\nDialect defaults:") // the next table names dialects
	// A row's first cell names one field or several: "| `a`, `b` | …".
	documented := map[string]bool{}
	name := regexp.MustCompile("`([a-z_]+)`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("README.md has no config field table under \"## Config fields\"")
	}
	for _, f := range configFieldTable {
		if !documented[f.name] {
			t.Errorf("config field %s is not in README.md's config field table", f.name)
		}
	}
	for field := range documented {
		if !slices.ContainsFunc(configFieldTable, func(f configField) bool { return f.name == field }) {
			t.Errorf("README.md's config field table names %s, which is no config field", field)
		}
	}
}

// TestConfigFieldRowsAreWhole: every schema says what it is, and every row
// has what its step and effect use.
func TestConfigFieldRowsAreWhole(t *testing.T) {
	for name, schema := range configFields {
		if strings.TrimSpace(schema.Description) == "" {
			t.Errorf("config field %s has no Description", name)
		}
	}
	for _, f := range configFieldTable {
		// asConnection's value is compared, and read by writeConnection.
		applied := f.step == beforeEndpoints || f.step == afterEndpoints || f.step == asConnection
		if got := f.set.apply != nil; got != applied {
			t.Errorf("%s: has set.apply %v, want %v for its step", f.name, got, applied)
		}
		if f.effect != keepsTokens && f.set.value == nil && f.step != asSeed {
			t.Errorf("%s %s but has no set.value to compare", f.name, f.effect)
		}
	}
}
