package tokenbroker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// keyMaterial collects what must never be shown: private keys (each PEM
// body line too) and signed assertions with their jti.
type keyMaterial struct {
	mu sync.Mutex
	m  map[string]string // secret -> what it is
}

// addPEM adds the lines of a private key's PEM that hold private material:
// a line found in the key's public forms (the modulus, the public point) is
// public.
func (k *keyMaterial) addPEM(what, text string) {
	signer, err := parsePrivateKey(text)
	if err != nil {
		panic(err)
	}
	sk := &signingKey{signer: signer, stored: &storedKey{}}
	jwk, _ := json.Marshal(sk.jwk(""))
	public := strings.ReplaceAll(sk.publicPEM(), "\n", "") + string(jwk)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m["PRIVATE KEY"] = "a PEM private key"
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		urlLine := strings.NewReplacer("+", "-", "/", "_", "=", "").Replace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && !strings.Contains(public, line) && !strings.Contains(public, urlLine) {
			k.m[line] = what
		}
	}
}

func (k *keyMaterial) add(what, secret string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if secret != "" {
		k.m[secret] = what
	}
}

// TestNoKeyMaterialShown runs the signing flows with trace logging: keys
// imported (PEM, service account JSON), generated, rotated and promoted;
// mints refused and accepted; bad key material. No private key (nor a line
// of one) and no assertion or its jti reaches a log line, a response, a
// warning or an error.
func TestNoKeyMaterialShown(t *testing.T) {
	e := newEnv(t)
	var logs strings.Builder
	var logMu sync.Mutex
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	})}))
	secrets := &keyMaterial{m: map[string]string{}}
	record := func(entry *logical.StorageEntry) {
		var ring keyRingEntry
		if strings.HasPrefix(entry.Key, keyPrefix) && json.Unmarshal(entry.Value, &ring) == nil {
			for _, k := range []*storedKey{ring.Current, ring.Next, ring.Previous} {
				if k != nil {
					secrets.addPEM("a stored private key", k.PrivateKey)
				}
			}
		}
	}
	e.storage.onPut.Store(&record)
	defer e.storage.onPut.Store(nil)
	var seen []string
	show := func(resp *logical.Response, err error) {
		if resp != nil {
			b, _ := json.Marshal(resp.Data)
			seen = append(seen, string(b))
			seen = append(seen, resp.Warnings...)
		}
		seen = append(seen, fmt.Sprint(err))
	}
	do := func(op logical.Operation, p string, data map[string]any) { show(e.do(op, p, data)) }

	imported := pkcs1PEM(testRSA)
	secrets.addPEM("the imported private key", imported)
	secrets.addPEM("the service account's key", pkcs8PEM(testRSA))
	oktaURL := e.fake.URL() + fakeprovider.PathOktaToken
	do(logical.CreateOperation, "config/imported", map[string]any{"provider": "okta", "token_url": oktaURL, "ca_pem": e.fake.CAPEM(),
		"client_id": "0oa-imp", "private_key": imported, "scopes": "okta.apps.read"})
	do(logical.ReadOperation, "creds/imported", nil) // refused: the fake does not know the key
	e.fake.AddAssertionKey("0oa-imp", "", &testRSA.PublicKey)
	do(logical.ReadOperation, "creds/imported", nil)
	secrets.add("a client assertion", e.fake.LastRequest(fakeprovider.PathOktaToken).Params["client_assertion"])

	do(logical.CreateOperation, "config/generated", map[string]any{"provider": "oauth2", "token_url": oktaURL, "ca_pem": e.fake.CAPEM(),
		"client_id": "c", "generate_key": "ec-p256"})
	do(logical.UpdateOperation, "key/generated/rotate", map[string]any{"generate_key": "rsa-2048"})
	do(logical.UpdateOperation, "key/generated/promote", nil)
	for _, p := range []string{"config/generated", "key/generated", "jwks/generated", "config/imported", "key/imported", "status/imported"} {
		do(logical.ReadOperation, p, nil)
	}
	do(logical.CreateOperation, "config/google", map[string]any{"provider": "google", "ca_pem": e.fake.CAPEM(), "scopes": "s",
		"service_account_json": fmt.Sprintf(`{"type":"service_account","client_email":"sa@x","private_key_id":"k","private_key":%q,"token_uri":%q}`,
			pkcs8PEM(testRSA), e.fake.URL()+fakeprovider.PathGoogleToken)})
	do(logical.ReadOperation, "creds/google", nil) // refused: the fake does not know the key
	do(logical.CreateOperation, "config/broken", map[string]any{"provider": "oauth2", "token_url": oktaURL, "client_id": "c",
		"private_key": strings.Replace(imported, "MII", "XII", 1)})
	do(logical.CreateOperation, "config/broken", map[string]any{"provider": "google",
		"service_account_json": `{"client_email":"a","private_key":` + fmt.Sprintf("%q", imported) + `,}`})

	if n := len(secrets.m); n < 40 {
		t.Fatalf("collected %d secrets, want every line of every key and the assertions", n)
	}
	out := logs.String() + strings.Join(seen, "\n")
	if !strings.Contains(logs.String(), "next signing key promoted") {
		t.Fatalf("the log lacks the flows above (%d bytes)", logs.Len())
	}
	for secret, what := range secrets.m {
		if strings.Contains(out, secret) {
			t.Errorf("%s reached a log line, response or error: %.24q…", what, secret)
		}
	}
	var assertion struct {
		JTI string `json:"jti"`
	}
	if parts := strings.Split(e.fake.LastRequest(fakeprovider.PathOktaToken).Params["client_assertion"], "."); len(parts) == 3 {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		_ = json.Unmarshal(payload, &assertion)
	}
	if assertion.JTI == "" || strings.Contains(out, assertion.JTI) {
		t.Errorf("the assertion's jti %q is missing or was shown", assertion.JTI)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
