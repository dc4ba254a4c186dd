package tokenbroker

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// The signing key a config write makes (private_key, generate_key,
// service_account_json) or changes (certificate, key_id); it is stored with
// the config (path_config.go) in key/<name>.

// applyKey makes or changes the current signing key from private_key,
// generate_key or service_account_json, certificate and key_id.
func (c *providerConfig) applyKey(d *framework.FieldData, name string, now time.Time) error {
	str := func(key string) (string, bool) {
		v, ok := d.Raw[key]
		s, _ := v.(string)
		return strings.TrimSpace(s), ok
	}
	privatePEM, _ := str("private_key")
	kind, _ := str("generate_key")
	kid, kidSent := str("key_id")
	certPEM, certSent := str("certificate")
	if saJSON, _ := str("service_account_json"); saJSON != "" {
		if privatePEM != "" || kind != "" {
			return fmt.Errorf("service_account_json holds its own private key: give it without private_key or generate_key")
		}
		sa, err := provider.ParseServiceAccount([]byte(saJSON))
		if err != nil {
			return fmt.Errorf("service_account_json: %w", err)
		}
		privatePEM, c.AssertionIssuer = sa.PrivateKey, sa.ClientEmail
		if !kidSent {
			kid, kidSent = sa.PrivateKeyID, true
		}
		if _, sent := d.Raw["token_url"]; !sent {
			c.TokenURL = sa.TokenURI
		}
	}
	current := c.keys.active()
	if kind != "" && privatePEM == "" && current != nil && current.stored.Generated == kind {
		kind = "" // the same generate_key again keeps the key (a re-applied Terraform config)
	}
	if privatePEM == "" && kind == "" {
		if !kidSent && !certSent {
			return nil
		}
		if current == nil {
			return fmt.Errorf("certificate and key_id belong to a signing key: give private_key or generate_key too")
		}
		privatePEM = current.stored.PrivateKey
		if !kidSent {
			kid = current.stored.KeyID
		}
		if !certSent {
			certPEM = current.stored.Certificate
		}
	}
	k, err := c.makeKey(privatePEM, kind, kid, certPEM, name, now)
	if err != nil {
		return err
	}
	if current != nil && privatePEM == current.stored.PrivateKey {
		k.stored.CreatedAt, k.stored.Generated = current.stored.CreatedAt, current.stored.Generated
	}
	c.keys = c.keys.withCurrent(k)
	return nil
}

// makeKey makes a signing key for c; a generated key gets a self-signed
// certificate where the provider identifies keys by certificate.
func (c *providerConfig) makeKey(privatePEM, kind, kid, certPEM, name string, now time.Time) (*signingKey, error) {
	k, err := newKey(privatePEM, kind, kid, certPEM, now)
	if err != nil || kind == "" || certPEM != "" || !c.endpoint().KeyNeedsCertificate() {
		return k, err
	}
	cert, err := selfSignedCertificate(k.signer, name, now)
	if err != nil {
		return nil, err
	}
	k.stored.Certificate = cert
	return k.stored.parse()
}
