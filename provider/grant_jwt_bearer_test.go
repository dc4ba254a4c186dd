package provider

import (
	"net/url"
	"slices"
	"testing"
)

// TestJWTBearerRequest: grant_type is RFC 7523's URN and the assertion is
// signed for the token URL; scopes go in the request (Google: in the
// assertion); no client authentication unless a style is set.
func TestJWTBearerRequest(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", okBody)
	cases := []struct {
		name           string
		e              Endpoint
		wantScopeParam string
		wantBasic      bool
	}{
		{"oauth2 with grant=jwt_bearer", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, ClientID: "c", Scopes: []string{"a", "b"}}, "a b", false},
		{"google service account", Endpoint{Dialect: Google, Assertion: Assertion{Issuer: "sa@p"}, Scopes: []string{"a"}}, "", false},
		{"salesforce", Endpoint{Dialect: SalesforceJWT, ClientID: "c", Assertion: Assertion{Subject: "u"}}, "", false},
		{"with client authentication asked for", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, ClientID: "c", ClientSecret: "s", AuthStyle: AuthBasic}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.TokenURL, e.Key, e.Now = srv.URL+"/token", &SigningKey{Signer: sigRSA}, sigClock
			if got := e.BaseGrant(); got != GrantJWTBearer {
				t.Fatalf("BaseGrant = %s, want jwt_bearer", got)
			}
			if _, err := exchange(t, &e, GrantJWTBearer, ""); err != nil {
				t.Fatal(err)
			}
			form, _ := url.ParseQuery(rec.body)
			if form.Get("grant_type") != jwtBearerURN || form.Get("scope") != c.wantScopeParam {
				t.Errorf("form = %v, want grant_type %s and scope %q", form, jwtBearerURN, c.wantScopeParam)
			}
			if (rec.auth != "") != c.wantBasic || form.Has("client_assertion") || (!c.wantBasic && form.Has("client_id")) {
				t.Errorf("client authentication: Authorization %q, form %v; want Basic=%v and nothing else", rec.auth, form, c.wantBasic)
			}
			_, claims := verifiedJWT(t, form.Get("assertion"), &sigRSA.PublicKey, RS256)
			if claims["iss"] == "" || claims["aud"] == nil {
				t.Errorf("assertion claims = %v", claims)
			}
		})
	}
}

// TestBaseGrantChoice: the base grant is the chosen one among the dialect's,
// else the dialect's grant for a held key, else its default.
func TestBaseGrantChoice(t *testing.T) {
	key := &SigningKey{Signer: sigRSA}
	for _, c := range []struct {
		name string
		e    Endpoint
		want Grant
	}{
		{"oauth2", Endpoint{Dialect: OAuth2}, GrantClientCredentials},
		{"oauth2 grant=jwt_bearer", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer}, GrantJWTBearer},
		{"google without a key: a user's authorization", Endpoint{Dialect: Google}, GrantAuthorizationCode},
		{"google with a service account key", Endpoint{Dialect: Google, Key: key}, GrantJWTBearer},
		{"echo360 cannot choose jwt_bearer", Endpoint{Dialect: Echo360, Grant: GrantJWTBearer}, GrantClientCredentials},
		{"github app", Endpoint{Dialect: GitHubApp, Key: key}, GrantInstallationToken},
	} {
		if got := c.e.BaseGrant(); got != c.want {
			t.Errorf("%s: BaseGrant = %s, want %s", c.name, got, c.want)
		}
	}
	if got := (&Endpoint{Dialect: OAuth2}).BaseGrants(); !slices.Equal(got, []Grant{GrantClientCredentials, GrantJWTBearer}) {
		t.Errorf("oauth2 BaseGrants = %v", got)
	}
}
