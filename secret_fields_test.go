package tokenbroker

// Secret fields sent with the wrong type: refused before the framework
// decodes them (its errors quote the value, and Vault's audit log keeps error
// text unhashed), with an error that names the field and the type it takes.

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// secretMarker is inside every wrong-typed secret below; no answer, error or
// log line may hold it.
const secretMarker = "S3CRET-MARKER-7f3a9c"

// secretPEM is a secret as an operator pastes it: a PEM key.
const secretPEM = "-----BEGIN PRIVATE KEY-----\nMIIEv" + secretMarker + "QIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

// wrongSecretValue is a value of a type no secret field takes, and the
// texts of it that must not appear anywhere.
type wrongSecretValue struct {
	name  string
	value any
	// stringList: a list of strings, which string-list fields take.
	stringList bool
	leaks      []string
}

var wrongSecretValues = []wrongSecretValue{
	{name: "a map", value: map[string]any{"pem": secretPEM}, leaks: []string{secretMarker, "BEGIN PRIVATE KEY"}},
	{name: "a list of one", value: []any{secretPEM}, stringList: true, leaks: []string{secretMarker, "BEGIN PRIVATE KEY"}},
	{name: "a list of two", value: []any{secretPEM, "second-" + secretMarker}, stringList: true, leaks: []string{secretMarker, "BEGIN PRIVATE KEY"}},
	{name: "a list of strings", value: []string{secretPEM}, stringList: true, leaks: []string{secretMarker}},
	{name: "a list holding a map", value: []any{map[string]any{"pem": secretPEM}}, leaks: []string{secretMarker}},
	{name: "a list holding a number", value: []any{"ok-" + secretMarker, json.Number("31415926535897932384")}, leaks: []string{secretMarker, "31415926535"}},
	{name: "a nested map", value: map[string]any{"a": []any{map[string]any{"b": secretPEM}}}, leaks: []string{secretMarker}},
	{name: "a JSON number", value: json.Number("31415926535897932384"), leaks: []string{"31415926535", "3.1415926535"}},
	{name: "a float", value: 27182818284.5, leaks: []string{"27182818284", "2.7182818284"}},
	{name: "an int", value: 161803398874, leaks: []string{"161803398874", "1.61803398874"}},
	{name: "a bool", value: true, leaks: []string{"true"}},
}

// secretFieldUse is one secret field of one operation of one path.
type secretFieldUse struct {
	path  *framework.Path
	req   string // a request path the pattern matches
	op    logical.Operation
	field string
}

// secretFieldUses walks the backend's paths: every operation of every path
// with a field marked Sensitive, so a secret field added later is covered.
func secretFieldUses(t *testing.T, b *backend) []secretFieldUse {
	t.Helper()
	var uses []secretFieldUse
	for _, p := range b.Paths {
		for _, field := range slices.Sorted(maps.Keys(p.Fields)) {
			if !isSecretField(p.Fields[field]) {
				continue
			}
			reqPath := requestPathFor(p.Pattern)
			if got := b.Route(reqPath); got != p {
				t.Fatalf("pattern %q: the request path %q made for it routes elsewhere; teach requestPathFor this pattern", p.Pattern, reqPath)
			}
			for _, op := range slices.Sorted(maps.Keys(p.Operations)) {
				uses = append(uses, secretFieldUse{path: p, req: reqPath, op: op, field: field})
			}
		}
	}
	return uses
}

// requestPathFor turns a path pattern into a request path it matches: every
// named group becomes the name "x", anchors and optional slashes go.
func requestPathFor(pattern string) string {
	var out strings.Builder
	for i := 0; i < len(pattern); i++ {
		if strings.HasPrefix(pattern[i:], "(?P<") {
			depth := 0
			for ; i < len(pattern); i++ {
				switch pattern[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					depth--
				}
				if depth == 0 {
					break
				}
			}
			out.WriteString("x")
			continue
		}
		switch c := pattern[i]; {
		case c == '^' || c == '$':
		case c == '?' && i > 0 && pattern[i-1] == '/':
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// storageDump is every entry of s, by key.
func storageDump(t *testing.T, s logical.Storage) map[string]string {
	t.Helper()
	keys, err := logical.CollectKeys(t.Context(), s)
	if err != nil {
		t.Fatalf("list storage: %v", err)
	}
	out := map[string]string{}
	for _, k := range keys {
		entry, err := s.Get(t.Context(), k)
		if err != nil || entry == nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = string(entry.Value)
	}
	return out
}

// TestSecretFieldsRefuseWrongTypes: every secret field of every path, sent
// as a map, a list, a number, a bool or a nested value, is refused with a
// 400 that names the field and the type it takes and quotes no part of the
// value, by the existence check Vault runs first and by the request itself;
// storage is unchanged and no log line holds the value.
func TestSecretFieldsRefuseWrongTypes(t *testing.T) {
	e := newEnv(t)
	var logs syncBuffer
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}))
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	before := storageDump(t, e.storage)

	uses := secretFieldUses(t, e.b)
	covered := map[string]bool{}
	for _, use := range uses {
		covered[use.field] = true
	}
	for _, want := range knownSecretFields {
		if !covered[want] {
			t.Errorf("no path takes the secret field %q marked Sensitive; the walk found %v", want, slices.Sorted(maps.Keys(covered)))
		}
	}

	for _, use := range uses {
		schema := use.path.Fields[use.field]
		stringList := schema.Type == framework.TypeCommaStringSlice || schema.Type == framework.TypeStringSlice
		for _, wrong := range wrongSecretValues {
			if wrong.stringList && stringList {
				continue // taken: a list of strings
			}
			t.Run(use.req+"/"+string(use.op)+"/"+use.field+"/"+wrong.name, func(t *testing.T) {
				req := func() *logical.Request {
					return &logical.Request{Operation: use.op, Path: use.req, Storage: e.storage,
						Data: map[string]any{use.field: wrong.value, "client_id": "other-client"}}
				}
				wantText := use.field + " must be " + typeName(schema.Type)
				answer := func(what string, resp *logical.Response, err error) {
					t.Helper()
					status, _ := logical.RespondErrorCommon(req(), resp, err)
					if errors.As(err, new(errutil.UserError)) {
						status = 400 // Vault answers an existence check's user error as an invalid request
					}
					text := ""
					if err != nil {
						text = err.Error()
					} else if resp != nil && resp.IsError() {
						text = resp.Error().Error()
					}
					if status != 400 || !strings.Contains(text, wantText) {
						t.Errorf("%s: status %d, error %q; want 400 with an error containing %q", what, status, text, wantText)
					}
					encoded, _ := json.Marshal(resp)
					for _, leak := range wrong.leaks {
						if strings.Contains(text, leak) || strings.Contains(string(encoded), leak) {
							t.Errorf("%s: the answer holds %q of the value: error %q, response %s", what, leak, text, encoded)
						}
					}
				}
				ctx := context.Background()
				if use.path.ExistenceCheck != nil && (use.op == logical.CreateOperation || use.op == logical.UpdateOperation) {
					_, _, err := e.b.HandleExistenceCheck(ctx, req())
					answer("existence check", nil, err)
				}
				resp, err := e.b.HandleRequest(ctx, req())
				answer("request", resp, err)
				if after := storageDump(t, e.storage); !maps.Equal(after, before) {
					t.Errorf("storage changed: %d entries before, %d after", len(before), len(after))
				}
				for _, leak := range wrong.leaks {
					if leak != "true" && strings.Contains(logs.String(), leak) {
						t.Errorf("a log line holds %q of the value", leak)
					}
				}
			})
		}
	}
}

// knownSecretFields must each be marked Sensitive wherever a path takes them.
var knownSecretFields = []string{
	"client_secret", "client_secrets", "api_key", "refresh_token", "private_key",
	"service_account_json", "code", "state",
}

// TestKnownSecretFieldsAreMarkedSensitive: the check keys on the schema's
// Sensitive flag, so a field carrying a secret must have it on every path
// (the callback's code and state included).
func TestKnownSecretFieldsAreMarkedSensitive(t *testing.T) {
	e := newEnv(t)
	for _, p := range e.b.Paths {
		for _, name := range knownSecretFields {
			if s, ok := p.Fields[name]; ok && !isSecretField(s) {
				t.Errorf("path %q: field %q carries a secret but is not marked Sensitive", p.Pattern, name)
			}
		}
	}
}

// TestSecretFieldsTakeTheirTypes: what the secret fields take is still
// taken: a string, a list or comma-separated string for a list field, and
// null (no value).
func TestSecretFieldsTakeTheirTypes(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]any
	}{
		{"a string secret", map[string]any{"client_secret": testClientSecret}},
		{"client_secrets as a list of strings", map[string]any{"client_secrets": []any{"old-1", "old-2"}}},
		{"client_secrets as a Go list of strings", map[string]any{"client_secrets": []string{"old-1"}}},
		{"client_secrets as a comma-separated string", map[string]any{"client_secrets": "old-1,old-2"}},
		{"a null secret", map[string]any{"api_key": nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.config("x", fakeprovider.Echo360, c.fields)
			if _, err := e.do(logical.ReadOperation, "creds/x", nil); err != nil {
				t.Errorf("read after a config write with %v: %v", c.fields, err)
			}
		})
	}
}

// TestFieldHelperNeverQuotesASecret: field, which every handler reads its
// fields with, names a secret field and its type, never the value, even
// when called on data the framework has not checked.
func TestFieldHelperNeverQuotesASecret(t *testing.T) {
	for _, wrong := range wrongSecretValues {
		t.Run(wrong.name, func(t *testing.T) {
			d := &framework.FieldData{Raw: map[string]any{"private_key": wrong.value}, Schema: configFields}
			_, _, err := field[string](d, "private_key")
			if err == nil || !strings.Contains(err.Error(), "private_key must be a string") {
				t.Fatalf("err = %v, want one naming private_key and a string", err)
			}
			for _, leak := range wrong.leaks {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("err %q holds %q of the value", err, leak)
				}
			}
		})
	}
}
