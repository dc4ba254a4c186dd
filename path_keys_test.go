package tokenbroker

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// jwks reads jwks/<name> as Vault would serve it: the raw body's key ids.
func (e *env) jwks(name string) []string {
	e.t.Helper()
	resp := e.mustDo(logical.ReadOperation, "jwks/"+name, nil)
	expect(e.t, "jwks content type", resp.Data[logical.HTTPContentType], any("application/json"))
	expect(e.t, "jwks status", resp.Data[logical.HTTPStatusCode], any(200))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &set); err != nil {
		e.t.Fatalf("jwks body: %v", err)
	}
	var ids []string
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm == "" {
			e.t.Fatalf("jwks key %s: public=%v use=%q alg=%q; want a public signing key with its alg", k.KeyID, k.IsPublic(), k.Use, k.Algorithm)
		}
		ids = append(ids, k.KeyID)
	}
	return ids
}

// TestKeyRotation: rotate adds a next key, published at once; promote makes
// it current, and the previous key stays published for one assertion_ttl.
// Every read in between is served.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	key := e.configSigned("okta", "okta", map[string]any{"token_url": e.fake.URL() + fakeprovider.PathOktaToken,
		"client_id": "0oa-rot", "generate_key": "ec-p256", "scopes": "okta.apps.read", "assertion_ttl": "5m"})
	first := key["key_id"].(string)
	e.fake.AddAssertionKey("0oa-rot", "", publicKey(t, key, ""))
	e.token("okta")
	if !jwksAre(e.jwks("okta"), first) {
		t.Fatalf("jwks before rotation = %v, want [%s]", e.jwks("okta"), first)
	}

	rotated := e.mustDo(logical.UpdateOperation, "key/okta/rotate", map[string]any{"generate_key": "rsa-2048"}).Data
	next := rotated["next_key_id"].(string)
	expectField(t, rotated, "key_id", first)
	expectField(t, rotated, "next_algorithm", "RS256")
	if !jwksAre(e.jwks("okta"), first, next) {
		t.Fatalf("jwks after rotate = %v, want [%s %s]", e.jwks("okta"), first, next)
	}
	expectField(t, e.mustDo(logical.ReadOperation, "config/okta", nil).Data, "next_key_id", next)
	e.fake.AddAssertionKey("0oa-rot", "", publicKey(t, rotated, "next_"))

	promoted := e.mustDo(logical.UpdateOperation, "key/okta/promote", nil).Data
	expectField(t, promoted, "key_id", next)
	expectField(t, promoted, "previous_key_id", first)
	if _, has := promoted["next_key_id"]; has {
		t.Errorf("a next key remains after promotion: %v", promoted)
	}
	if !jwksAre(e.jwks("okta"), next, first) {
		t.Errorf("jwks right after promotion = %v, want [%s %s]", e.jwks("okta"), next, first)
	}
	e.mustDo(logical.DeleteOperation, "creds/okta", nil)
	e.token("okta") // signed by the promoted key
	e.clock.Add(5*time.Minute + time.Second)
	if !jwksAre(e.jwks("okta"), next) {
		t.Errorf("jwks one assertion_ttl after promotion = %v, want [%s]", e.jwks("okta"), next)
	}
	if _, err := e.do(logical.UpdateOperation, "key/okta/promote", nil); err == nil {
		t.Error("promote without a next key succeeded")
	}
}

// TestKeyPromotedWhenTheProviderRefusesTheCurrentOne: after the provider
// dropped the current key (invalid_client) and holds the next, the read
// that mints succeeds with the next key, which becomes current.
func TestKeyPromotedWhenTheProviderRefusesTheCurrentOne(t *testing.T) {
	e := newEnv(t)
	cert := func(data map[string]any, prefix string) {
		if err := e.fake.AddAssertionCertificate("ms-rot", certDER(t, data, prefix)); err != nil {
			t.Fatal(err)
		}
	}
	key := e.configSigned("ms", "microsoft", map[string]any{"token_url": e.fake.URL() + fakeprovider.MicrosoftTokenPath("t1"),
		"client_id": "ms-rot", "generate_key": "rsa-2048", "scopes": "https://graph.microsoft.com/.default"})
	cert(key, "")
	first := e.token("ms")
	rotated := e.mustDo(logical.UpdateOperation, "key/ms/rotate", map[string]any{"generate_key": "rsa-3072"}).Data
	if rotated["next_x5t#S256"] == "" || rotated["next_certificate"] == nil {
		t.Fatalf("a generated next key for microsoft has no certificate: %v", rotated)
	}
	e.fake.RemoveAssertionKeys("ms-rot") // the old certificate was removed in Entra, the new one uploaded
	cert(rotated, "next_")

	e.clock.Add(2 * time.Hour) // the token expired: the next read mints
	if tok := e.token("ms"); tok == first || !e.fake.Valid(tok) {
		t.Fatalf("the read after the provider dropped the current key: token %q valid=%v", tok, e.fake.Valid(tok))
	}
	now := e.mustDo(logical.ReadOperation, "key/ms", nil).Data
	expectField(t, now, "key_id", rotated["next_key_id"])
	expectField(t, now, "previous_key_id", rotated["key_id"])
	if st := e.status("ms"); st["healthy"] != true {
		t.Errorf("status after the automatic promotion: %v", st)
	}
	stored, err := loadKeyRing(t.Context(), e.storage, "ms")
	if err != nil || stored.current.kid != rotated["next_key_id"] || stored.next != nil {
		t.Errorf("stored keys after promotion: current %v next %v (%v)", stored.current.kid, stored.next, err)
	}
}

// TestKeyPathsRefuse: a name without keys, a next key the provider would
// not take, a rotation without a key; none changes anything.
func TestKeyPathsRefuse(t *testing.T) {
	e := newEnv(t)
	e.config("plain", "oauth2", nil)
	for _, p := range []string{"key/plain", "jwks/plain", "key/none"} {
		if _, err := e.do(logical.ReadOperation, p, nil); err == nil {
			t.Errorf("read %s without keys succeeded", p)
		}
	}
	e.configSigned("gh", "github_app", map[string]any{"app_id": "1", "installation_id": "2", "private_key": pkcs1PEM(testRSA)})
	for _, c := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no key given", map[string]any{}, "give generate_key or private_key"},
		{"an EC key for GitHub", map[string]any{"generate_key": "ec-p256"}, "does not accept ES256"},
		{"the current key id", map[string]any{"generate_key": "rsa-2048", "key_id": "same"}, ""},
	} {
		_, err := e.do(logical.UpdateOperation, "key/gh/rotate", c.fields)
		if c.want == "" {
			continue
		}
		expectErr(t, c.name, err, c.want)
	}
	e.mustDo(logical.UpdateOperation, "config/gh", map[string]any{"key_id": "same"})
	_, err := e.do(logical.UpdateOperation, "key/gh/rotate", map[string]any{"generate_key": "rsa-2048", "key_id": "same"})
	expectErr(t, "a next key with the current key id", err, "the next key needs its own")
	if !slices.Contains(e.b.PathsSpecial.Unauthenticated, "jwks/*") || !slices.Contains(e.b.PathsSpecial.SealWrapStorage, keyPrefix) {
		t.Errorf("PathsSpecial: unauthenticated %v, seal-wrapped %v; want jwks/* and key/", e.b.PathsSpecial.Unauthenticated, e.b.PathsSpecial.SealWrapStorage)
	}
}

func jwksAre(got []string, want ...string) bool { return slices.Equal(got, want) }
