package tokenbroker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/sdk/logical"
)

// Test keys, made once, and their PEM forms.
var (
	testRSA = func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }()
	testEC  = func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }()
)

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8PEM(k crypto.Signer) string {
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return pemOf("PRIVATE KEY", der)
}

func pkcs1PEM(k *rsa.PrivateKey) string {
	return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
}

func sec1PEM(k *ecdsa.PrivateKey) string {
	der, _ := x509.MarshalECPrivateKey(k)
	return pemOf("EC PRIVATE KEY", der)
}

// certPEM is a self-signed certificate of k.
func certPEM(t testing.TB, k crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("CERTIFICATE", der)
}

// publicKey reads the public key of a key/<name> (or next_) read.
func publicKey(t testing.TB, data map[string]any, prefix string) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(data[prefix+"public_key_pem"].(string)))
	if block == nil {
		t.Fatalf("%spublic_key_pem is not PEM: %v", prefix, data)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// publicJWK reads the jwk of a key/<name> (or next_) read.
func publicJWK(t testing.TB, data map[string]any, prefix string) jose.JSONWebKey {
	t.Helper()
	b, _ := json.Marshal(data[prefix+"jwk"])
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatalf("%sjwk %s: %v", prefix, b, err)
	}
	return k
}

// certDER reads the certificate of a key/<name> (or next_) read.
func certDER(t testing.TB, data map[string]any, prefix string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(data[prefix+"certificate"].(string)))
	if block == nil {
		t.Fatalf("%scertificate is not PEM: %v", prefix, data)
	}
	return block.Bytes
}

// TestKeyImportAndGenerate: every accepted PEM form and generated type
// gives a key whose kid defaults to its RFC 7638 thumbprint; key/<name>
// shows the public key and never the private one.
func TestKeyImportAndGenerate(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name     string
		fields   map[string]any
		wantType string
		wantAlg  string
	}{
		{"RSA PKCS#1", map[string]any{"private_key": pkcs1PEM(testRSA)}, "rsa-2048", "RS256"},
		{"RSA PKCS#8", map[string]any{"private_key": pkcs8PEM(testRSA)}, "rsa-2048", "RS256"},
		{"RSA PKCS#8 with PS256", map[string]any{"private_key": pkcs8PEM(testRSA), "signing_alg": "PS256"}, "rsa-2048", "PS256"},
		{"EC SEC1 after EC PARAMETERS", map[string]any{"private_key": "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + sec1PEM(testEC)}, "ec-p256", "ES256"},
		{"EC PKCS#8", map[string]any{"private_key": pkcs8PEM(testEC)}, "ec-p256", "ES256"},
		{"generated rsa-3072", map[string]any{"generate_key": "rsa-3072"}, "rsa-3072", "RS256"},
		{"generated ec-p256", map[string]any{"generate_key": "ec-p256"}, "ec-p256", "ES256"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "k" + string(rune('a'+i))
			extra := withFields(c.fields, nil)
			extra["client_secret"] = nil // a key and no secret: private_key_jwt
			e.config(name, "oauth2", extra)
			key := e.mustDo(logical.ReadOperation, "key/"+name, nil).Data
			pub := publicKey(t, key, "")
			want := publicJWK(t, key, "")
			thumb, _ := want.Thumbprint(crypto.SHA256)
			expectField(t, key, "key_id", base64.RawURLEncoding.EncodeToString(thumb))
			expectField(t, key, "key_type", c.wantType)
			expectField(t, key, "algorithm", c.wantAlg)
			if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(want.Key) {
				t.Errorf("public_key_pem and jwk disagree")
			}
			cfg := e.mustDo(logical.ReadOperation, "config/"+name, nil).Data
			expectField(t, cfg, "private_key_set", true)
			expectField(t, cfg, "auth_style", "private_key_jwt")
			expectField(t, cfg, "key_id", key["key_id"])
			for what, data := range map[string]map[string]any{"key read": key, "config read": cfg} {
				if b, _ := json.Marshal(data); strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), `"d":`) {
					t.Errorf("the %s shows a private key: %s", what, b)
				}
			}
		})
	}
}

// TestGenerateKeyAgainKeepsTheKey: writing the same generate_key again (a
// re-applied Terraform config) keeps the key; key_id and certificate
// change the current key without replacing it.
func TestGenerateKeyAgainKeepsTheKey(t *testing.T) {
	e := newEnv(t)
	e.config("g", "oauth2", map[string]any{"client_secret": nil, "generate_key": "ec-p256"})
	first := e.mustDo(logical.ReadOperation, "key/g", nil).Data
	e.mustDo(logical.UpdateOperation, "config/g", map[string]any{"generate_key": "ec-p256", "scopes": "a"})
	again := e.mustDo(logical.ReadOperation, "key/g", nil).Data
	expect(t, "public key after the same generate_key", again["public_key_pem"], first["public_key_pem"])
	e.mustDo(logical.UpdateOperation, "config/g", map[string]any{"key_id": "mine"})
	named := e.mustDo(logical.ReadOperation, "key/g", nil).Data
	expect(t, "public key after key_id", named["public_key_pem"], first["public_key_pem"])
	expectField(t, named, "key_id", "mine")
	expectField(t, named, "generated", true)
	e.mustDo(logical.UpdateOperation, "config/g", map[string]any{"generate_key": "rsa-2048"})
	if other := e.mustDo(logical.ReadOperation, "key/g", nil).Data; other["public_key_pem"] == first["public_key_pem"] || other["key_type"] != "rsa-2048" {
		t.Errorf("generate_key of another type kept the key: %v", other["key_type"])
	}
}

// TestSigningConfigRefusals: bad key material and settings get a clear 400
// that names the field, quotes no key, and changes nothing.
func TestSigningConfigRefusals(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := newEnv(t)
	cases := []struct {
		name    string
		dialect string
		fields  map[string]any
		want    string
	}{
		{"not PEM", "oauth2", map[string]any{"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}, "private_key holds no PEM private key"},
		{"encrypted", "oauth2", map[string]any{"private_key": pemOf("ENCRYPTED PRIVATE KEY", []byte("x"))}, "private_key is encrypted"},
		{"garbage in a PEM block", "oauth2", map[string]any{"private_key": pemOf("PRIVATE KEY", []byte("not DER at all"))}, "does not parse"},
		{"RSA 1024", "oauth2", map[string]any{"private_key": pkcs1PEM(small)}, "an RSA key of 1024 bits"},
		{"EC P-384", "oauth2", map[string]any{"private_key": sec1PEM(p384)}, "P-384"},
		{"both private_key and generate_key", "oauth2", map[string]any{"private_key": pkcs8PEM(testEC), "generate_key": "ec-p256"}, "exclusive"},
		{"a certificate of another key", "oauth2", map[string]any{"private_key": pkcs8PEM(testEC), "certificate": certPEM(t, other)}, "not the signing key's"},
		{"ES256 with an RSA key", "oauth2", map[string]any{"private_key": pkcs8PEM(testRSA), "signing_alg": "ES256"}, "does not fit"},
		{"microsoft with an EC key", "microsoft", map[string]any{"private_key": pkcs8PEM(testEC), "scopes": "x/.default"}, "does not accept ES256"},
		{"salesforce_jwt with a 5 minute assertion", "salesforce_jwt", map[string]any{"private_key": pkcs8PEM(testRSA), "assertion_subject": "u", "assertion_ttl": "5m"}, "longer than"},
		{"an assertion_ttl of 2h", "oauth2", map[string]any{"generate_key": "ec-p256", "assertion_ttl": "2h"}, "between"},
		{"a reserved claim", "oauth2", map[string]any{"generate_key": "ec-p256", "assertion_claims": map[string]any{"iss": "x"}}, `may not set "iss"`},
		{"jwt_bearer where none is offered", "echo360", map[string]any{"grant": "jwt_bearer"}, "grant jwt_bearer is not available"},
		{"salesforce_jwt without a user", "salesforce_jwt", map[string]any{"private_key": pkcs8PEM(testRSA)}, "assertion_subject"},
		{"microsoft without a certificate", "microsoft", map[string]any{"private_key": pkcs8PEM(testRSA), "scopes": "x/.default"}, "certificate"},
		{"github_app without app_id", "github_app", map[string]any{"private_key": pkcs1PEM(testRSA), "installation_id": "1"}, "app_id"},
		{"github_app without installation", "github_app", map[string]any{"private_key": pkcs1PEM(testRSA), "app_id": "1"}, "installation_id or installation_owner"},
		{"a certificate without a key", "oauth2", map[string]any{"certificate": certPEM(t, testEC)}, "give private_key or generate_key too"},
		{"a user's credentials as a service account", "google", map[string]any{"service_account_json": `{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN"}`}, "service_account_json: type is not service_account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := withFields(map[string]any{"provider": c.dialect, "token_url": e.fake.URL() + "/t", "client_id": "c"}, c.fields)
			_, err := e.do(logical.CreateOperation, "config/bad", data)
			expectErr(t, c.name, err, c.want)
			if strings.Contains(err.Error(), "MII") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error quotes key material: %v", err)
			}
			if keys, _ := e.storage.List(t.Context(), keyPrefix); len(keys) != 0 {
				t.Errorf("a refused config stored keys: %v", keys)
			}
		})
	}
}

// FuzzParsePrivateKey: any input is a usable key or an error that quotes
// none of it, never a panic.
func FuzzParsePrivateKey(f *testing.F) {
	f.Add(pkcs8PEM(testEC))
	f.Add(pkcs1PEM(testRSA))
	f.Add(sec1PEM(testEC))
	f.Add(pemOf("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}))
	f.Add("-----BEGIN RSA PRIVATE KEY-----\nQUFB\n-----END RSA PRIVATE KEY-----\n")
	f.Fuzz(func(t *testing.T, text string) {
		signer, err := parsePrivateKey(text)
		if err == nil {
			if keyType(signer.Public()) == "" {
				t.Fatalf("accepted a key of no known type: %T", signer)
			}
			return
		}
		for _, line := range strings.Split(text, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 12 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
				t.Fatalf("error %q quotes the input %q", err, line)
			}
		}
	})
}
