package tokenbroker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 by definition
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// The key model: a signing key imported (PEM) or generated here, its
// public forms (PEM, JWK, RFC 7638 thumbprint) and its certificate. A
// private key never leaves the plugin: no read, log line or error shows it.
// A name's keys (current, next, previous) are stored as key/<name>
// (key_storage.go).

// The key types generate_key makes.
const (
	keyRSA2048 = "rsa-2048"
	keyRSA3072 = "rsa-3072"
	keyRSA4096 = "rsa-4096"
	keyECP256  = "ec-p256"
)

var generatedKeyTypes = []string{keyRSA2048, keyRSA3072, keyRSA4096, keyECP256}

// RSA key sizes accepted on import.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// selfSignedLifetime is the validity of a certificate made for a generated
// key where the provider identifies keys by certificate (Microsoft).
const selfSignedLifetime = 2 * 365 * 24 * time.Hour

// storedKey is one signing key as stored.
type storedKey struct {
	PrivateKey  string    `json:"private_key"`           // PKCS#8 PEM
	KeyID       string    `json:"key_id,omitempty"`      // explicit kid; "" means the thumbprint
	Certificate string    `json:"certificate,omitempty"` // PEM
	Generated   string    `json:"generated,omitempty"`   // the generate_key type; "" when imported
	CreatedAt   time.Time `json:"created_at"`
}

// signingKey is a stored key, parsed.
type signingKey struct {
	stored *storedKey
	signer crypto.Signer
	cert   *x509.Certificate // nil when none
	kid    string            // the kid in force
}

// newKey makes a signing key from PEM text (PKCS#1 or PKCS#8 RSA, SEC1 or
// PKCS#8 EC P-256) or generates one of kind; exactly one is given. kid and
// certPEM are optional.
func newKey(privatePEM, kind, kid, certPEM string, now time.Time) (*signingKey, error) {
	var signer crypto.Signer
	var err error
	switch {
	case privatePEM != "" && kind != "":
		return nil, errors.New("private_key and generate_key are exclusive: give one")
	case kind != "":
		signer, err = generateKey(kind)
	default:
		signer, err = parsePrivateKey(privatePEM)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	st := &storedKey{
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		KeyID:      kid, Certificate: certPEM, Generated: kind, CreatedAt: now.UTC(),
	}
	return st.parse()
}

// parse turns a stored key into a usable one.
func (st *storedKey) parse() (*signingKey, error) {
	signer, err := parsePrivateKey(st.PrivateKey)
	if err != nil {
		return nil, err
	}
	k := &signingKey{stored: st, signer: signer, kid: st.KeyID}
	if st.Certificate != "" {
		if k.cert, err = parseCertificate(st.Certificate, signer.Public()); err != nil {
			return nil, err
		}
	}
	if k.kid == "" {
		k.kid = thumbprint(signer.Public())
	}
	return k, nil
}

// pemForms names the PEM private key blocks by their format.
var pemForms = map[string]string{"RSA PRIVATE KEY": "PKCS#1", "EC PRIVATE KEY": "SEC1", "PRIVATE KEY": "PKCS#8"}

// parsePrivateKey reads the first private key in PEM text. Its errors name
// the problem, never the key.
func parsePrivateKey(text string) (crypto.Signer, error) {
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("private_key holds no PEM private key (want PKCS#1 or PKCS#8 RSA, SEC1 or PKCS#8 EC P-256)")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("private_key is encrypted: decrypt it first (openssl pkcs8 -in key.pem)")
		default:
			continue // EC PARAMETERS, a certificate, …
		}
		if err != nil {
			return nil, fmt.Errorf("private_key: the %s key does not parse", pemForms[block.Type])
		}
		return checkKey(key)
	}
}

// checkKey accepts RSA keys of 2048 to 8192 bits and EC P-256 keys.
func checkKey(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("private_key: an RSA key of %d bits (want %d to %d)", bits, minRSABits, maxRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("private_key: an EC key on %s (want P-256)", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("private_key: a %T key (want RSA or EC P-256)", key)
}

// generateKey makes a new key of kind.
func generateKey(kind string) (crypto.Signer, error) {
	switch kind {
	case keyRSA2048, keyRSA3072, keyRSA4096:
		bits := map[string]int{keyRSA2048: 2048, keyRSA3072: 3072, keyRSA4096: 4096}[kind]
		return rsa.GenerateKey(rand.Reader, bits)
	case keyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("unknown generate_key %q (want rsa-2048, rsa-3072, rsa-4096 or ec-p256)", kind)
}

// keyType is the generate_key type that would make a key like k.
func keyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return keyECP256
	}
	return ""
}

// parseCertificate reads the first certificate in PEM text and checks that
// it certifies pub.
func parseCertificate(text string, pub crypto.PublicKey) (*x509.Certificate, error) {
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("certificate holds no PEM certificate")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate does not parse: %v", err)
		}
		if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
			return nil, errors.New("certificate is not the signing key's: its public key differs")
		}
		return cert, nil
	}
}

// selfSignedCertificate certifies k's public key under its own signature,
// named after the config, for providers that register keys as certificates.
func selfSignedCertificate(signer crypto.Signer, name string, now time.Time) (string, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "tokenbroker " + name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(selfSignedLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return "", fmt.Errorf("making a certificate for the generated key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// thumbprint is pub's RFC 7638 JWK thumbprint (SHA-256, base64url).
func thumbprint(pub crypto.PublicKey) string {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// wire is k as the provider package signs with it.
func (k *signingKey) wire(alg string) *provider.SigningKey {
	sk := &provider.SigningKey{Signer: k.signer, Algorithm: alg, KeyID: k.kid}
	if k.cert != nil {
		sk.Certificate = k.cert.Raw
	}
	return sk
}

// publicPEM is k's public key as PKIX PEM.
func (k *signingKey) publicPEM() string {
	der, err := x509.MarshalPKIXPublicKey(k.signer.Public())
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// jwk is k's public JWK (RFC 7517) for alg, with its certificate (x5c,
// x5t, x5t#S256) when one is set.
func (k *signingKey) jwk(alg string) map[string]any {
	pub := jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.kid, Algorithm: alg, Use: "sig"}
	if k.cert != nil {
		s1, s256 := x5t(k.cert.Raw)
		pub.Certificates = []*x509.Certificate{k.cert}
		pub.CertificateThumbprintSHA1, pub.CertificateThumbprintSHA256 = s1, s256
	}
	b, err := pub.MarshalJSON()
	if err != nil {
		return map[string]any{}
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// certificatePEM is k's certificate, "" when none.
func (k *signingKey) certificatePEM() string { return k.stored.Certificate }

// x5tS256 is the base64url SHA-256 thumbprint of k's certificate ("" when none).
func (k *signingKey) x5tS256() string {
	if k.cert == nil {
		return ""
	}
	_, s256 := x5t(k.cert.Raw)
	return base64.RawURLEncoding.EncodeToString(s256)
}

// x5t returns a certificate's SHA-1 and SHA-256 thumbprints (RFC 7515 §4.1.7-8).
func x5t(der []byte) (sha1Sum, sha256Sum []byte) {
	s1, s256 := sha1.Sum(der), sha256.Sum256(der) //nolint:gosec // x5t is SHA-1 by definition
	return s1[:], s256[:]
}
