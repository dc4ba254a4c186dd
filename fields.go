package tokenbroker

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
)

// Helpers shared by the path handlers: reading request fields, checking
// names, and shaping response values.

// field reads an optional field of d as T; ok is false when it was not sent.
func field[T any](d *framework.FieldData, key string) (v T, ok bool, err error) {
	raw, ok, err := d.GetOkErr(key)
	if err != nil {
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
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
