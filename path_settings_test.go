package tokenbroker

// settings: mount-wide settings, read and written through HandleRequest,
// stored seal-wrapped under "settings", loaded on first use and reloaded
// after an invalidation.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestSettingsDefaultsWriteAndRead(t *testing.T) {
	e := newEnv(t)
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", defaultMetricsMaxNames)
	if entry, _ := e.storage.Get(context.Background(), settingsKey); entry != nil {
		t.Fatalf("a read stored the defaults: %s", entry.Value)
	}

	resp := e.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_max_names": 10})
	expectField(t, resp.Data, "metrics_max_names", 10)
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 10)
	entry, err := e.storage.Get(context.Background(), settingsKey)
	if err != nil || entry == nil {
		t.Fatalf("settings not stored: %v", err)
	}
	expect(t, "stored settings", strings.TrimSpace(string(entry.Value)), `{"metrics_max_names":10}`)

	// A write that names no field changes nothing; 0 is a value, not "unset".
	e.mustDo(logical.UpdateOperation, "settings", nil)
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 10)
	e.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_max_names": 0})
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 0)

	// The settings survive a restart: loaded from storage on first use.
	e.restart()
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 0)
}

func TestSettingsBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_max_names": 50})
	for _, bad := range []any{-1, maxMetricsMaxNames + 1, "many"} {
		resp, err := e.do(logical.UpdateOperation, "settings", map[string]any{"metrics_max_names": bad})
		if err == nil || resp == nil || !resp.IsError() {
			t.Errorf("metrics_max_names=%v: err=%v, want a 400", bad, err)
		}
	}
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 50)
}

// A stored entry without a field (written before the field existed) keeps
// that field's default, so fields can be added one at a time.
func TestSettingsMissingFieldKeepsDefault(t *testing.T) {
	e := newEnv(t)
	if err := e.storage.Put(context.Background(), &logical.StorageEntry{Key: settingsKey, Value: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", defaultMetricsMaxNames)
}

// Another node wrote the settings: the invalidation makes this node reload
// them; without it, the loaded ones stay (settings are read once, not per request).
func TestSettingsReloadOnInvalidation(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.ReadOperation, "settings", nil) // loaded
	if err := settingsEntries.save(context.Background(), e.storage, "", &mountSettings{MetricsMaxNames: 7}); err != nil {
		t.Fatal(err)
	}
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", defaultMetricsMaxNames)
	e.b.InvalidateKey(context.Background(), settingsKey)
	expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "metrics_max_names", 7)
}

func TestSettingsSealWrapped(t *testing.T) {
	e := newEnv(t)
	if !slices.Contains(e.b.SpecialPaths().SealWrapStorage, settingsKey) {
		t.Fatalf("SealWrapStorage = %v, want it to hold %q", e.b.SpecialPaths().SealWrapStorage, settingsKey)
	}
}
