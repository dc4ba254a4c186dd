package fakeprovider

import (
	"net/http"
	"net/url"
)

// Echo360Encoding says where the echo360 endpoint reads its parameters.
// Echo360's article shows no request; its Swagger page sends the parameters
// in the URL query of a POST, while an RFC 6749 client sends a form body.
type Echo360Encoding int

const (
	// Echo360FormOnly (the default) reads an application/x-www-form-urlencoded
	// body only, as RFC 6749 §4.4.2 and §6 prescribe: another Content-Type,
	// or any of grant_type, client_id, client_secret or refresh_token in the
	// URL query, is refused with 400 invalid_request.
	Echo360FormOnly Echo360Encoding = iota
	// Echo360QueryOnly reads the URL query of a POST only, as the Swagger
	// page sends it: a request with a body is refused with 400
	// invalid_request.
	Echo360QueryOnly
	// Echo360Either accepts a form body (also without Content-Type), query
	// parameters, or both; a parameter in both is taken from the body.
	Echo360Either
)

var echo360EncodingNames = []string{
	"form",
	"query",
	"either",
}

// String is "form", "query" or "either", as cmd/fakeprovider's flag spells it.
func (e Echo360Encoding) String() string {
	return enumName(echo360EncodingNames, int(e), "Echo360Encoding")
}

// SetEcho360Encoding sets where the echo360 endpoint reads its parameters.
func (s *Server) SetEcho360Encoding(e Echo360Encoding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echo360Encoding = e
}

// echo360TokenParams are the parameters that Echo360FormOnly refuses to find
// in the URL query.
var echo360TokenParams = []string{"grant_type", "client_id", "client_secret", "refresh_token"}

// echo360Params returns the request's parameters as the encoding in force
// allows. On failure it has answered and returns ok false.
func (s *Server) echo360Params(w http.ResponseWriter, x *exchange) (params url.Values, ok bool) {
	s.mu.Lock()
	enc := s.echo360Encoding
	s.mu.Unlock()
	query := x.r.URL.Query()
	refuse := func(description string) (url.Values, bool) {
		oauthError(w, http.StatusBadRequest, "invalid_request", description, false)
		return nil, false
	}

	switch enc {
	case Echo360QueryOnly:
		if len(x.body) > 0 {
			return refuse("parameters must be sent in the URL query; the body must be empty")
		}
		return query, true
	case Echo360Either:
		if len(x.body) == 0 {
			return query, true
		}
		if mt := mediaType(x.r); mt != contentTypeForm && mt != "" {
			return refuse("parameters must be a form body (application/x-www-form-urlencoded) or query parameters")
		}
	default: // Echo360FormOnly
		if mediaType(x.r) != contentTypeForm {
			return refuse("Content-Type must be application/x-www-form-urlencoded")
		}
		for _, k := range echo360TokenParams {
			if query.Has(k) {
				return refuse("parameters must be sent in the form body, not in the URL query")
			}
		}
		query = url.Values{}
	}
	body, err := url.ParseQuery(string(x.body))
	if err != nil {
		return refuse("malformed form body")
	}
	for k, v := range query {
		if !body.Has(k) {
			body[k] = v
		}
	}
	return body, true
}
