//go:build e2e

package e2e

// Signed credentials through a real Vault: zitadel's OpenID provider (not
// ours) verifies the plugin's private_key_jwt assertions and JWT profile
// grants, fetching the public keys from Vault's unauthenticated JWKS path;
// key rotation, by hand and by itself, while reads go on; and no private key
// in the trace-level server log, the audit log or any answer.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/internal/assertionop"
)

// keyRead is `vault read tokenbroker/key/<name>`'s data.
func (v *Vault) keyRead(name string) map[string]any {
	v.t.Helper()
	return v.JSON("read", "-format=json", mountPath+"/key/"+name)["data"].(map[string]any)
}

// publicOf reads the public key of a key read (prefix "" or "next_").
func publicOf(t *testing.T, key map[string]any, prefix string) any {
	t.Helper()
	block, _ := pem.Decode([]byte(key[prefix+"public_key_pem"].(string)))
	if block == nil {
		t.Fatalf("no %spublic_key_pem in %v", prefix, key)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// getJWKS fetches jwks/<name> with no Vault token.
func getJWKS(t *testing.T, v *Vault, name string) (jose.JSONWebKeySet, *http.Response) {
	t.Helper()
	resp, err := http.Get(v.Addr + "/v1/" + mountPath + "/jwks/" + name) // no X-Vault-Token
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatalf("jwks body %s: %v", body, err)
		}
	}
	return set, resp
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// TestZitadelThroughVault: the OP fetches the plugin's public keys from
// Vault's JWKS path (no token) and accepts its private_key_jwt client
// credentials (EC key made inside Vault) and JWT profile grant (imported
// RSA key, PS256).
func TestZitadelThroughVault(t *testing.T) {
	t.Parallel()
	o, err := assertionop.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	v := StartVaultWithPlugin(t)
	auditLog := v.Dir + "/audit.log"
	v.Must("audit", "enable", "file", "file_path="+auditLog)
	imported, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(imported)
	keyFile := v.WriteFile("imported.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	v.WriteConfig("client", "token_url="+o.TokenURL, "client_id=svc-client", "generate_key=ec-p256",
		"assertion_audience="+o.Issuer, "scopes=openid")
	v.WriteConfig("bearer", "token_url="+o.TokenURL, "client_id=svc-bearer", "grant=jwt_bearer", "private_key=@"+keyFile,
		"signing_alg=PS256", "assertion_audience="+o.Issuer)
	for _, name := range []string{"client", "bearer"} {
		set, resp := getJWKS(t, v, name)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
			t.Fatalf("GET jwks/%s without a token: %d %q, %d keys", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(set.Keys))
		}
		o.AddClientJWKS("svc-"+name, v.Addr+"/v1/"+mountPath+"/jwks/"+name, http.DefaultClient)
		c := v.ReadCreds(name)
		if subject, ok := o.Subject(c.AccessToken); !ok || subject != "svc-"+name {
			t.Errorf("%s: the OP did not issue the token to svc-%s (subject %q)", name, name, subject)
		}
	}
	if status := v.JSON("read", "-format=json", mountPath+"/status/bearer")["data"].(map[string]any); status["last_grant"] != "jwt_bearer" {
		t.Errorf("status/bearer last_grant = %v, want jwt_bearer", status["last_grant"])
	}
	secrets := pemSecretLines(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), &imported.PublicKey)
	scanForKeyMaterial(t, v, auditLog, secrets, v.Must("read", mountPath+"/config/bearer")+v.Must("read", mountPath+"/key/bearer"))
}

// TestKeyRotationThroughVault: reads go on every 100 ms against the fake
// Okta (2-second tokens, so many mints) while a next key is added and
// promoted by hand, then added again and promoted by the plugin itself when
// the provider drops the current key. No read fails.
func TestKeyRotationThroughVault(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 2*time.Second)
	v.WriteConfig("okta", "provider=okta", "token_url="+fake.URL()+fakeprovider.PathOktaToken, "ca_pem=@"+fake.CAFile,
		"client_id=0oa-e2e", "generate_key=ec-p256", "scopes=okta.apps.read", "refresh_ahead=1s")
	first := v.keyRead("okta")
	fake.AddAssertionKey("0oa-e2e", "", publicOf(t, first, ""))

	var reads, failures atomic.Int64
	var failed sync.Map
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			reads.Add(1)
			if r := v.Run("read", "-format=json", mountPath+"/creds/okta"); r.Code != 0 {
				failures.Add(1)
				failed.Store(failures.Load(), r.String())
			}
		}
	}()
	pause := func() { time.Sleep(2500 * time.Millisecond) } // a token's lifetime: mints happen meanwhile

	pause()
	rotated := v.JSON("write", "-format=json", mountPath+"/key/okta/rotate", "generate_key=rsa-2048")["data"].(map[string]any)
	if set, _ := getJWKS(t, v, "okta"); len(set.Keys) != 2 {
		t.Errorf("jwks after rotate: %v, want current and next", kids(set))
	}
	fake.AddAssertionKey("0oa-e2e", "", publicOf(t, rotated, "next_"))
	pause()
	v.Must("write", "-f", mountPath+"/key/okta/promote")
	pause()
	if now := v.keyRead("okta"); now["key_id"] != rotated["next_key_id"] {
		t.Errorf("after promote: key_id %v, want %v", now["key_id"], rotated["next_key_id"])
	}

	again := v.JSON("write", "-format=json", mountPath+"/key/okta/rotate", "generate_key=ec-p256")["data"].(map[string]any)
	fake.RemoveAssertionKeys("0oa-e2e") // the provider now holds only the newest key
	fake.AddAssertionKey("0oa-e2e", "", publicOf(t, again, "next_"))
	eventually(t, 15*time.Second, 200*time.Millisecond, "the plugin to promote the next key by itself", func() bool {
		return v.keyRead("okta")["key_id"] == again["next_key_id"]
	})
	pause()
	// At least 20 reads across the rotations, however slow the machine runs
	// the CLI (each read is a vault process).
	eventually(t, 60*time.Second, 100*time.Millisecond, "20 reads", func() bool { return reads.Load() >= 20 })
	close(stop)
	<-done
	failed.Range(func(_, r any) bool { t.Errorf("a read failed: %s", r); return true })
	if failures.Load() != 0 || reads.Load() < 20 {
		t.Errorf("%d of %d reads failed; want none of at least 20", failures.Load(), reads.Load())
	}
	t.Logf("%d reads, %d upstream calls, 0 failed", reads.Load(), fake.TotalCalls())
}

// pemSecretLines are the lines of a private key's PEM that hold private
// material (a line also found in the public key's PEM is public).
func pemSecretLines(privatePEM string, pub any) []string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	public := strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "\n", "")
	out := []string{"PRIVATE KEY"}
	for _, line := range strings.Split(privatePEM, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && !strings.Contains(public, line) {
			out = append(out, line)
		}
	}
	return out
}

// scanForKeyMaterial checks the trace-level server log, the audit log
// (auditLog) and seen (answers) for any of secrets.
func scanForKeyMaterial(t *testing.T, v *Vault, auditLog string, secrets []string, seen string) {
	t.Helper()
	serverLog, err := os.ReadFile(v.log)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(serverLog), "provider request") || !strings.Contains(string(audit), mountPath+"/config/bearer") {
		t.Fatalf("the server log (%d bytes) or audit log (%d bytes) lacks the flows", len(serverLog), len(audit))
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"the trace-level server log": string(serverLog), "the audit log": string(audit), "an answer": seen} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds private key material %.20q…", what, s)
			}
		}
	}
}
