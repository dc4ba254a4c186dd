package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ServiceAccount is what signs a Google service account's tokens, read from
// its key file (the JSON the console downloads:
// https://cloud.google.com/iam/docs/keys-create-delete): client_email is the
// assertion's iss, private_key signs it under the kid private_key_id, and
// token_uri is both its aud and the token URL
// (https://developers.google.com/identity/protocols/oauth2/service-account#httprest).
type ServiceAccount struct {
	ClientEmail  string
	PrivateKey   string // PEM: a secret, never shown
	PrivateKeyID string
	TokenURI     string
}

// GoogleTokenURL is the token_uri of every Google service account.
const GoogleTokenURL = "https://oauth2.googleapis.com/token"

// ParseServiceAccount reads a service account key file. Its errors never
// quote the file: it holds a private key.
func ParseServiceAccount(b []byte) (*ServiceAccount, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("not valid JSON (at byte %d)", syntax.Offset)
		case errors.As(err, &typ) && typ.Field != "":
			return nil, fmt.Errorf("%q is not a %s", typ.Field, typ.Type)
		}
		return nil, errors.New("not a JSON object")
	}
	sa := &ServiceAccount{
		ClientEmail: strings.TrimSpace(f.ClientEmail), PrivateKey: f.PrivateKey,
		PrivateKeyID: strings.TrimSpace(f.PrivateKeyID), TokenURI: strings.TrimSpace(f.TokenURI),
	}
	switch {
	case f.Type != "" && f.Type != "service_account":
		return nil, errors.New("type is not service_account (a user's or an external account's credentials cannot sign)")
	case sa.ClientEmail == "":
		return nil, errors.New("client_email is missing")
	case !strings.Contains(sa.PrivateKey, "-----BEGIN"):
		return nil, errors.New("private_key is missing or not PEM")
	}
	if sa.TokenURI == "" {
		sa.TokenURI = GoogleTokenURL
	}
	return sa, nil
}
