package fakeprovider

// Dialect names one of the token wire formats the fake speaks.
type Dialect string

// The dialects, named as tokenbroker's provider configs name them.
const (
	OAuth2     Dialect = "oauth2"
	OAuth2JSON Dialect = "oauth2_json"
	Echo360    Dialect = "echo360"
	APIVideo   Dialect = "apivideo"
	Endorsed   Dialect = "endorsed"
)

// Endpoint paths. Token endpoints are subject to latency and failure injection;
// PathWhoami is not.
const (
	PathOAuth2Token     = "/oauth2/token"
	PathOAuth2JSONToken = "/oauth/token"
	PathEcho360Token    = "/oauth2/access_token"
	PathAPIVideoAuth    = "/auth/api-key"
	PathAPIVideoRefresh = "/auth/refresh"
	PathEndorsedToken   = "/api/v1/auth/tokens"
	PathWhoami          = "/api/whoami"
)

// TokenPath is the path at which d mints a token from its base credentials.
func (d Dialect) TokenPath() string {
	switch d {
	case OAuth2:
		return PathOAuth2Token
	case OAuth2JSON:
		return PathOAuth2JSONToken
	case Echo360:
		return PathEcho360Token
	case APIVideo:
		return PathAPIVideoAuth
	case Endorsed:
		return PathEndorsedToken
	}
	return ""
}

// Endpoint describes one route, for listings such as cmd/fakeprovider's banner.
type Endpoint struct {
	Dialect Dialect // "" for the resource endpoint
	Method  string
	Path    string
	Purpose string
}

// Endpoints lists every route the fake serves.
func Endpoints() []Endpoint {
	return []Endpoint{
		{OAuth2, "POST", PathOAuth2Token, "RFC 6749 client_credentials and refresh_token (form body, Basic or body client auth); RFC 8707 resource; RFC 8693 token exchange with SetTokenExchange"},
		{OAuth2JSON, "GET|POST", PathOAuth2JSONToken, "client_credentials as a JSON body"},
		{Echo360, "POST", PathEcho360Token, "Echo360 client_credentials and refresh_token (form body; query with SetEcho360Encoding)"},
		{APIVideo, "POST", PathAPIVideoAuth, `api.video {"apiKey": ...}`},
		{APIVideo, "POST", PathAPIVideoRefresh, `api.video {"refreshToken": ...}`},
		{Endorsed, "POST", PathEndorsedToken, "Endorsed client_credentials (JSON or form body)"},
		{"", "GET", PathWhoami, "protected resource: 200 for a valid Bearer access token, else 401"},
		{OAuth2, "POST", PathRevoke, "RFC 7009 token revocation (the token endpoint's client authentication)"},
		{OAuth2, "GET|POST", PathUserinfo, "OpenID Connect userinfo of a user's access token (SetAccount)"},
		{"", "GET", PathGitHubAPI + "/user", "GitHub's authenticated user of a user access token"},
		{GitHubApp, "POST", PathGitHubAPI + "/app/installations/{id}/access_tokens", "GitHub App installation token (app JWT; /orgs|/users/{owner}/installation, DELETE /installation/token)"},
		{GoogleServiceAccount, "POST", PathGoogleToken, "Google service account JWT bearer grant"},
		{SalesforceJWT, "POST", PathSalesforceToken, "Salesforce JWT bearer flow"},
		{MicrosoftCertificate, "POST", PathMicrosoftToken, "Microsoft client credentials with a certificate's private_key_jwt; a user's refresh token for any consented resource"},
		{OktaServiceApp, "POST", PathOktaToken, "Okta service app client credentials with private_key_jwt"},
	}
}

// Grant names counted by Server.Grants.
const (
	grantClientCredentials = "client_credentials"
	grantRefreshToken      = "refresh_token"
	grantAPIKey            = "api_key"
)
