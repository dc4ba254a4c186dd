package provider

import "net/http"

// authNone identifies a public client by its client_id alone (RFC 6749
// §3.2.1); with no client id, nothing is added.
func authNone(e *Endpoint, params []param, _ http.Header) []param {
	if e.ClientID == "" {
		return params
	}
	return append(params, param{"client_id", e.ClientID})
}
