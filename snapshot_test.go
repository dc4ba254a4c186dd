package tokenbroker

import (
	"reflect"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestPublishedSnapshotsHoldNoConfig: what stays in memory for a name is what
// reads need, never the config with its secrets and keys; renewing loads the
// config from storage, so a config written meanwhile is what renews.
func TestPublishedSnapshotsHoldNoConfig(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.token("x") // a refresh, under the lock with the full config
	e.restart()
	e.token("x") // loaded from storage
	if snap := e.b.loaded("x"); snap == nil {
		t.Fatal("no snapshot loaded for x")
	}
	for _, held := range []reflect.Type{reflect.TypeOf(providerConfig{}), reflect.TypeOf(keyRing{}), reflect.TypeOf(signingKey{})} {
		if path := typeHolds(reflect.TypeOf(snapshot{}), held, map[reflect.Type]bool{}); path != "" {
			t.Errorf("snapshot holds a %s at %s: what reads keep in memory must not hold the config, its secrets or keys", held, path)
		}
	}
	expect(t, "refresh_ahead kept for reads", e.b.loaded("x").settings.refreshAhead, defaultRefreshAhead)
	expect(t, "can mint kept for status and metrics", e.b.loaded("x").settings.canMint, true)
}

// typeHolds is the path of fields by which a value of type t reaches a
// value of type held ("" when it cannot), following pointers, slices, maps
// and struct fields (not interfaces).
func typeHolds(t, held reflect.Type, seen map[reflect.Type]bool) string {
	if t == held {
		return "."
	}
	if seen[t] {
		return ""
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return typeHolds(t.Elem(), held, seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if path := typeHolds(t.Field(i).Type, held, seen); path != "" {
				return "." + t.Field(i).Name + path
			}
		}
	}
	return ""
}
