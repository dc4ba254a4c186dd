package tokenbroker

// Storage: every kind of entry the plugin keeps, by name, with typed load,
// save and delete over one implementation. Every prefix is under Vault's
// barrier and seal-wrapped (SealWrapStorage in backend.go).

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// entryKind is one kind of stored entry: the key prefix it is stored under
// by name, and what errors call it.
type entryKind[T any] struct{ prefix, what string }

var (
	configEntries   = entryKind[providerConfig]{configPrefix, "config"}
	stateEntries    = entryKind[tokenState]{tokenPrefix, "token state"}
	keyEntries      = entryKind[keyRingEntry]{keyPrefix, "keys"}
	codeEntries     = entryKind[pendingCode]{codePrefix, "pending authorization"}
	deviceEntries   = entryKind[pendingDevice]{devicePrefix, "pending device authorization"}
	settingsEntries = entryKind[mountSettings]{settingsKey, "settings"} // one entry: name ""
	appEntries      = entryKind[providerConfig]{appPrefix, "app"}
	// connectionRefs is each app's index of its connections, named
	// <app>/<connection>: listUnder(app) lists one app's.
	connectionRefs = entryKind[connectionRef]{connectionIndexPrefix, "connection index entry"}
	// roleEntries are the roles: a config's name and a fixed narrowing (path_role.go).
	roleEntries = entryKind[roleEntry]{rolePrefix, "role"}
)

// of names name's entry in errors.
func (k entryKind[T]) of(name string) string {
	if name == "" {
		return k.what
	}
	return fmt.Sprintf("%s %q", k.what, name)
}

// loadInto decodes name's entry over v (so fields the entry lacks keep v's
// defaults) and reports whether there was one.
func (k entryKind[T]) loadInto(ctx context.Context, s logical.Storage, name string, v *T) (bool, error) {
	entry, err := s.Get(ctx, k.prefix+name)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", k.of(name), err)
	}
	if entry == nil {
		return false, nil
	}
	if err := entry.DecodeJSON(v); err != nil {
		return false, fmt.Errorf("decode %s: %w", k.of(name), err)
	}
	return true, nil
}

// load reads name's entry; nil when there is none.
func (k entryKind[T]) load(ctx context.Context, s logical.Storage, name string) (*T, error) {
	v := new(T)
	if found, err := k.loadInto(ctx, s, name, v); err != nil || !found {
		return nil, err
	}
	return v, nil
}

// save stores v as name's entry, or deletes the entry when v is nil.
func (k entryKind[T]) save(ctx context.Context, s logical.Storage, name string, v *T) error {
	if v == nil {
		return k.delete(ctx, s, name)
	}
	entry, err := logical.StorageEntryJSON(k.prefix+name, v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", k.of(name), err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("write %s: %w", k.of(name), err)
	}
	return nil
}

// delete removes name's entry (none is fine).
func (k entryKind[T]) delete(ctx context.Context, s logical.Storage, name string) error {
	if err := s.Delete(ctx, k.prefix+name); err != nil {
		return fmt.Errorf("delete %s: %w", k.of(name), err)
	}
	return nil
}

// list lists the names that have an entry.
func (k entryKind[T]) list(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, k.prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s entries: %w", k.what, err)
	}
	return names, nil
}

// listUnder lists the names that have an entry in folder (names
// <folder>/<name>), without the folder.
func (k entryKind[T]) listUnder(ctx context.Context, s logical.Storage, folder string) ([]string, error) {
	names, err := s.List(ctx, k.prefix+folder+"/")
	if err != nil {
		return nil, fmt.Errorf("list %s entries of %q: %w", k.what, folder, err)
	}
	return names, nil
}
