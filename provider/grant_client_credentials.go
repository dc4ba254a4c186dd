package provider

// clientCredentials asks for a token for the client itself (RFC 6749 §4.4.2),
// with the configured scopes and audience, or the narrowing's, and the
// narrowing's resource indicators (RFC 8707 §2.1).
var clientCredentials = grant{
	name:    GrantClientCredentials,
	oauth:   true,
	narrows: narrowScopes | narrowAudience | narrowResources,
	params: func(e *Endpoint, in *TokenRequest) []param {
		params := []param{{"grant_type", string(GrantClientCredentials)}}
		if len(e.Scopes) > 0 {
			params = append(params, param{"scope", e.Scopes})
		}
		if e.Audience != "" {
			params = append(params, param{"audience", e.Audience})
		}
		return append(params, in.resourceParams()...)
	},
	needs: func(e *Endpoint) Credential {
		switch {
		case e.ClientID == "":
			return NeedsClientID
		case e.row().mintScopes && len(e.Scopes) == 0:
			return NeedsScopes
		}
		return e.authNeeds()
	},
}
