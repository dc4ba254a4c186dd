package provider

// GrantJWTBearer names the JWT-bearer grant (RFC 7523 §2.1) among the base
// grants a config may choose; on the wire its grant_type is jwtBearerURN.
const GrantJWTBearer Grant = "jwt_bearer"

const jwtBearerURN = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// jwtBearer asks for a token with a JWT signed by the endpoint's key as the
// authorization grant (RFC 7523 §2.1): iss, sub and aud say who asks for
// whom at which server. Client authentication is optional (§3.1): sent only
// when an auth style is set explicitly. Scopes go in the request, or in the
// assertion's scope claim where the dialect says so (Google).
var jwtBearer = grant{
	name:         GrantJWTBearer,
	oauth:        true,
	authOptional: true,
	narrows:      narrowScopes, // the narrowed endpoint's scopes, in the request or the scope claim
	params: func(e *Endpoint, _ *TokenRequest) []param {
		params := []param{{"grant_type", jwtBearerURN}, {"assertion", signed{}}}
		if len(e.Scopes) > 0 && !e.row().assertion.scopeClaim {
			params = append(params, param{"scope", e.Scopes})
		}
		return params
	},
	needs: func(e *Endpoint) Credential {
		switch {
		case e.Key == nil:
			return NeedsSigningKey
		case e.AssertionIssuer() == "":
			return NeedsAssertionIssuer
		case e.row().assertion.subject && e.AssertionSubject() == "":
			return NeedsAssertionSubject
		}
		return ""
	},
}
