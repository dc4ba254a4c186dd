package provider

import (
	"net/url"
	"testing"
)

// TestPrivateKeyJWTRequest: a client with a key and no secret authenticates
// by private_key_jwt (RFC 7523 §2.2): client_assertion_type, a client
// assertion for the token URL, client_id; no secret, no Authorization header.
func TestPrivateKeyJWTRequest(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", okBody)
	for _, c := range []struct {
		name string
		e    Endpoint
	}{
		{"oauth2 with a key and no secret", Endpoint{Dialect: OAuth2}},
		{"okta service app", Endpoint{Dialect: Okta, Scopes: []string{"okta.users.read"}}},
		{"microsoft certificate credential", Endpoint{Dialect: Microsoft, Scopes: []string{"https://graph.microsoft.com/.default"}}},
		{"explicit auth_style with a secret held too", Endpoint{Dialect: OAuth2, AuthStyle: AuthPrivateKeyJWT, ClientSecret: "unused"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.TokenURL, e.ClientID, e.Now = srv.URL+"/token", "client-7", sigClock
			e.Key = &SigningKey{Signer: sigRSA, KeyID: "k1", Certificate: sigCert}
			if got := e.EffectiveAuthStyle(); got != AuthPrivateKeyJWT {
				t.Fatalf("EffectiveAuthStyle = %s, want private_key_jwt", got)
			}
			if _, err := exchange(t, &e, GrantClientCredentials, ""); err != nil {
				t.Fatal(err)
			}
			form, _ := url.ParseQuery(rec.body)
			if rec.auth != "" || form.Has("client_secret") {
				t.Errorf("a secret was sent: Authorization %q, form %v", rec.auth, form)
			}
			if form.Get("client_assertion_type") != clientAssertionType || form.Get("client_id") != "client-7" ||
				form.Get("grant_type") != "client_credentials" {
				t.Errorf("form = %v, want client_assertion_type, client_id and grant_type", form)
			}
			_, claims := verifiedJWT(t, form.Get("client_assertion"), &sigRSA.PublicKey, e.SigningAlgorithm())
			if claims["iss"] != "client-7" || claims["sub"] != "client-7" || claims["aud"] != srv.URL+"/token" {
				t.Errorf("claims = %v, want iss = sub = client-7, aud = the token URL", claims)
			}
		})
	}
}

// TestSignedMintNeeds: what each base grant of signed credentials lacks, in the wire's terms.
func TestSignedMintNeeds(t *testing.T) {
	key := &SigningKey{Signer: sigRSA}
	withCert := &SigningKey{Signer: sigRSA, Certificate: sigCert}
	cases := []struct {
		name string
		e    Endpoint
		want Credential
	}{
		{"oauth2 without secret or key", Endpoint{Dialect: OAuth2, ClientID: "c"}, NeedsClientSecret},
		{"oauth2 with a key", Endpoint{Dialect: OAuth2, ClientID: "c", Key: key}, ""},
		{"microsoft key without certificate", Endpoint{Dialect: Microsoft, ClientID: "c", Key: key, Scopes: []string{"s"}}, NeedsCertificate},
		{"microsoft without scopes", Endpoint{Dialect: Microsoft, ClientID: "c", Key: withCert}, NeedsScopes},
		{"microsoft complete", Endpoint{Dialect: Microsoft, ClientID: "c", Key: withCert, Scopes: []string{"s"}}, ""},
		{"okta without scopes", Endpoint{Dialect: Okta, ClientID: "c", Key: key}, NeedsScopes},
		{"jwt bearer without key", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, ClientID: "c"}, NeedsSigningKey},
		{"jwt bearer without issuer", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, Key: key}, NeedsAssertionIssuer},
		{"salesforce without a user", Endpoint{Dialect: SalesforceJWT, ClientID: "c", Key: key}, NeedsAssertionSubject},
		{"google user authorization only", Endpoint{Dialect: Google, ClientID: "c", ClientSecret: "s"}, NeedsAuthorization},
		{"google service account", Endpoint{Dialect: Google, Key: key, Assertion: Assertion{Issuer: "sa@p"}}, ""},
		{"github app without app id", Endpoint{Dialect: GitHubApp, Key: key}, NeedsAppID},
		{"github app without installation", Endpoint{Dialect: GitHubApp, Key: key, Installation: &Installation{AppID: "1"}}, NeedsInstallation},
		{"github app by owner", Endpoint{Dialect: GitHubApp, Key: key, Installation: &Installation{AppID: "1", Owner: "acme"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.e.MintNeeds(); got != c.want {
				t.Errorf("MintNeeds = %q, want %q", got, c.want)
			}
		})
	}
}
