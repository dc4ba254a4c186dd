package provider

import (
	"encoding/json"
	"strings"
	"testing"
)

const testServiceAccountKey = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-a-real-key\n-----END PRIVATE KEY-----\n"

// TestParseServiceAccount: a Google key file gives iss, key, kid and token
// URL; anything else is refused with a message that quotes nothing secret.
func TestParseServiceAccount(t *testing.T) {
	good := `{"type":"service_account","project_id":"p","private_key_id":"abc123","private_key":"` +
		strings.ReplaceAll(testServiceAccountKey, "\n", `\n`) + `","client_email":"sa@p.iam.gserviceaccount.com","token_uri":"https://oauth2.googleapis.com/token"}`
	sa, err := ParseServiceAccount([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if sa.ClientEmail != "sa@p.iam.gserviceaccount.com" || sa.PrivateKeyID != "abc123" || sa.PrivateKey != testServiceAccountKey || sa.TokenURI != GoogleTokenURL {
		t.Errorf("parsed %+v", sa)
	}
	for _, c := range []struct{ name, in, want string }{
		{"not JSON", `{"private_key":"` + testServiceAccountKey[:20], "not valid JSON"},
		{"an array", `[]`, "not a JSON object"},
		{"a user's credentials", `{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN"}`, "not service_account"},
		{"no client_email", `{"private_key":"-----BEGIN PRIVATE KEY-----"}`, "client_email is missing"},
		{"no private key", `{"client_email":"a@b"}`, "private_key is missing"},
		{"a number for the key", `{"client_email":"a@b","private_key":7}`, `"private_key" is not a string`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseServiceAccount([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	if sa, _ := ParseServiceAccount([]byte(`{"client_email":"a@b","private_key":"-----BEGIN X"}`)); sa.TokenURI != GoogleTokenURL {
		t.Errorf("no token_uri: got %q, want Google's", sa.TokenURI)
	}
}

// FuzzParseServiceAccount: any input yields a service account or an error,
// never a panic, and an error never quotes the private key.
func FuzzParseServiceAccount(f *testing.F) {
	f.Add([]byte(`{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nsecretkeymaterial\n","client_email":"a@b"}`))
	f.Add([]byte(`{"private_key":"-----BEGIN secretkeymaterial","client_email":7}`))
	f.Add([]byte(`{"type":"x","private_key":"secretkeymaterial"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sa, err := ParseServiceAccount(b)
		if err != nil {
			var raw struct {
				PrivateKey string `json:"private_key"`
			}
			_ = json.Unmarshal(b, &raw) // what it can
			if len(raw.PrivateKey) >= 8 && strings.Contains(err.Error(), raw.PrivateKey) {
				t.Fatalf("error %q quotes the private key", err)
			}
			return
		}
		if sa.ClientEmail == "" || !strings.Contains(sa.PrivateKey, "-----BEGIN") || sa.TokenURI == "" {
			t.Fatalf("incomplete service account accepted: %+v", sa)
		}
	})
}
