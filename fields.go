package tokenbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Helpers shared by the path handlers: reading request fields, checking
// names, and shaping response values.

// field reads an optional field of d as T; ok is false when it was not sent.
// A secret field's errors name the field and the type it takes, never the
// value.
func field[T any](d *framework.FieldData, key string) (v T, ok bool, err error) {
	schema := d.Schema[key]
	if err := checkSecretField(key, schema, d.Raw[key]); err != nil {
		return v, false, err
	}
	raw, ok, err := d.GetOkErr(key)
	if err != nil {
		if isSecretField(schema) {
			return v, false, fmt.Errorf("%s must be %s", key, typeName(schema.Type))
		}
		return v, false, fmt.Errorf("%s: %w", key, err)
	}
	if !ok {
		return v, false, nil
	}
	v, isT := raw.(T)
	if !isT {
		return v, false, fmt.Errorf("%s: unexpected type %T", key, raw)
	}
	return v, true, nil
}

// nameField returns the validated name from the path.
func nameField(d *framework.FieldData) (string, error) {
	name, _, err := field[string](d, "name")
	if err != nil {
		return "", err
	}
	return name, validName(name)
}

// validName checks a config name: 1-128 letters, digits, '-', '_' or '.'.
// Names live in paths, so ordinary path policies gate them. (A loop, not a
// regexp: it runs on every creds read.)
func validName(name string) error {
	ok := len(name) >= 1 && len(name) <= 128 && name != "." && name != ".."
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("invalid name %q: use 1-128 letters, digits, '-', '_' or '.'", name)
	}
	return nil
}

// cleanList trims each item and drops empty ones.
func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// nonNil is s, or an empty list for nil: a response shows [], not null.
func nonNil[S ~[]E, E any](s S) S {
	if s == nil {
		return S{}
	}
	return s
}

// nonNilMap is m, or an empty map for nil: a response shows {}, not null.
// (Go cannot make an empty value of a type that may be a list or a map, so
// lists and maps have a helper each.)
func nonNilMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

// timeOrEmpty formats t as RFC 3339 UTC, or "" when unset.
func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// withFieldSchemas returns base with more's fields added.
func withFieldSchemas(base, more map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	maps.Copy(base, more)
	return base
}

// Secret fields (a schema with DisplayAttrs.Sensitive: client secrets, keys,
// refresh tokens, codes, states) are checked for type before the framework
// decodes a request: its decoding errors quote the value they could not
// convert, and Vault writes error text to its audit log unhashed. A secret
// sent with the wrong type is refused with a 400 that names the field and
// the type it takes, and nothing is changed. Marking a field Sensitive is
// all a new secret field needs.

// HandleRequest is the logical.Backend entry point (what Vault's plugin
// server calls): secret fields are checked before the framework sees them.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if err := b.checkSecretFields(req); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return b.Backend.HandleRequest(ctx, req)
}

// HandleExistenceCheck is the check Vault runs before a create or update;
// the framework decodes the request's fields there too, and Vault logs its
// errors.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (checkFound, exists bool, err error) {
	if err := b.checkSecretFields(req); err != nil {
		return false, false, errutil.UserError{Err: err.Error()}
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// checkSecretFields refuses a request whose secret fields hold values of a
// type the field does not take, naming every such field, sorted.
func (b *backend) checkSecretFields(req *logical.Request) error {
	if len(req.Data) == 0 || req.Operation == logical.HelpOperation {
		return nil
	}
	p := b.Route(req.Path)
	if p == nil {
		return nil
	}
	var bad []string
	for key, v := range req.Data {
		if err := checkSecretField(key, p.Fields[key], v); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%s; nothing was changed", strings.Join(bad, "; "))
}

// isSecretField reports whether s is a secret's schema.
func isSecretField(s *framework.FieldSchema) bool {
	return s != nil && s.DisplayAttrs != nil && s.DisplayAttrs.Sensitive
}

// checkSecretField returns an error naming key and the type it takes when
// s is a secret's schema and v a value of another type; nil (JSON null) is
// no value. The error never quotes v.
func checkSecretField(key string, s *framework.FieldSchema, v any) error {
	if !isSecretField(s) || v == nil {
		return nil
	}
	var got string
	switch s.Type {
	case framework.TypeString, framework.TypeLowerCaseString, framework.TypeNameString:
		// Strictly a string: the framework would turn a number or a bool into
		// one (a JSON number loses digits on the way).
		if _, ok := v.(string); !ok {
			got = kindOf(v)
		}
	case framework.TypeCommaStringSlice, framework.TypeStringSlice:
		got = notStrings(v)
	default:
		// Any other type: the framework's own decoding decides; only its
		// error, which may quote the value, is replaced.
		d := framework.FieldData{Raw: map[string]any{key: v}, Schema: map[string]*framework.FieldSchema{key: s}}
		if _, _, err := d.GetOkErr(key); err != nil {
			got = kindOf(v)
		}
	}
	if got == "" {
		return nil
	}
	return fmt.Errorf("%s must be %s, not %s", key, typeName(s.Type), got)
}

// typeName is what a field of type t takes, for error messages.
func typeName(t framework.FieldType) string {
	switch t {
	case framework.TypeString, framework.TypeLowerCaseString, framework.TypeNameString:
		return "a string"
	case framework.TypeCommaStringSlice, framework.TypeStringSlice:
		return "a string or a list of strings"
	}
	name := t.String()
	if strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// notStrings is "" when v is a string or a list of strings, else what v is.
func notStrings(v any) string {
	switch v := v.(type) {
	case string, []string:
		return ""
	case []any:
		for _, item := range v {
			if _, ok := item.(string); !ok {
				return "a list holding " + kindOf(item)
			}
		}
		return ""
	}
	return kindOf(v)
}

// kindOf names the JSON kind of a request value (a map, a list, a number…),
// never the value.
func kindOf(v any) string {
	if _, ok := v.(json.Number); ok {
		return "a number"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "a map"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Invalid:
		return "null"
	}
	return "a value of another type"
}
