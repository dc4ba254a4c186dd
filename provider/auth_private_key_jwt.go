package provider

import "net/http"

// clientAssertionType is RFC 7523 §2.2's client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authPrivateKeyJWT authenticates the client with a JWT its private key
// signed (RFC 7523 §2.2 and §3; OpenID Connect Core §9, private_key_jwt):
// iss and sub are the client id, aud the token endpoint, and each request
// gets a new one. client_id goes along when known (RFC 7521 §4.2 allows it;
// Microsoft documents it).
func authPrivateKeyJWT(e *Endpoint, params []param, _ http.Header) []param {
	if e.ClientID != "" {
		params = append(params, param{"client_id", e.ClientID})
	}
	return append(params, param{"client_assertion_type", clientAssertionType}, param{"client_assertion", signed{client: true}})
}

// authOmitted sends no client authentication: RFC 7523 §3.1 makes it
// optional with a JWT grant, and Google and Salesforce take none.
func authOmitted(_ *Endpoint, params []param, _ http.Header) []param { return params }
