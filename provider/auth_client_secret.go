package provider

import (
	"net/http"
	"net/url"
)

// authBasic sends the client id and secret as HTTP Basic credentials, each
// form-urlencoded first (RFC 6749 §2.3.1).
func authBasic(e *Endpoint, params []param, header http.Header) []param {
	r := http.Request{Header: header}
	r.SetBasicAuth(url.QueryEscape(e.ClientID), url.QueryEscape(e.ClientSecret))
	return params
}

// authBody sends the client id and secret as request parameters (RFC 6749 §2.3.1).
func authBody(e *Endpoint, params []param, _ http.Header) []param {
	return append(params, param{"client_id", e.ClientID}, param{"client_secret", e.ClientSecret})
}
