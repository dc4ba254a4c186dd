// Package provider speaks token endpoints: it builds token requests and reads
// token responses. It knows nothing about Vault or about config field names.
//
// A token request is assembled from parts, each in a file of its own:
//
//   - a grant, what is asked for (grant_*.go): client credentials (RFC 6749
//     §4.4), refresh (RFC 6749 §6), api.video's API key and refresh, a user's
//     authorization code with PKCE (RFC 6749 §4.1, RFC 7636) and device code
//     (RFC 8628), the JWT-bearer grant (RFC 7523 §2.1), a GitHub App's
//     installation token and token exchange (RFC 8693);
//   - a narrowing (narrowing.go), what one request asks less of than the
//     endpoint configures: scopes, audiences, resources (RFC 8707),
//     repositories and permissions; its canonical Key for caches, and the
//     Bounds it must keep within. A TokenRequest carries it through the
//     same pipeline (Client.Send);
//   - a client authentication (auth_*.go): HTTP Basic or body parameters
//     (RFC 6749 §2.3.1), none (a public client, RFC 6749 §2.1), or
//     private_key_jwt (RFC 7523 §2.2);
//   - signed assertions (assertion.go): what each dialect's JWTs claim, signed
//     by go-jose with a crypto.Signer the caller holds;
//   - an encoding (encoding.go): form, JSON or query string;
//   - a response reading (response.go): RFC 6749 §5.1 fields, tolerant of the
//     shapes providers really send, and one classification of every failure
//     (error.go).
//
// A dialect (dialect.go) is one row of data choosing these parts; a preset's
// row also carries the provider's documented endpoints. discovery.go reads an
// issuer's metadata (OpenID Connect Discovery, RFC 8414).
//
// A user's connection has two more calls: revoke.go revokes its refresh
// token (RFC 7009) with the token endpoint's client authentication, and
// account.go reads the account it holds (OpenID Connect userinfo, or
// GitHub's /user as its row says).
package provider
