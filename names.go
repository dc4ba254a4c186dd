package tokenbroker

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// maxListLimit bounds one page of a paginated LIST.
const maxListLimit = 10_000

// nameIndex is the sorted list of configured names, so a paginated LIST
// costs a binary search and a copy, not a storage listing of every name. It
// is loaded from storage on first use, kept as this node writes and deletes
// configs, and reloaded after another node changed one (invalidation).
type nameIndex struct {
	// list lists the names from storage (on first use, and after a reset).
	list  func(ctx context.Context, s logical.Storage) ([]string, error)
	mu    sync.Mutex
	names []string // sorted; nil: not loaded
}

// configNames lists the configured names: the index behind LIST config/.
func configNames(ctx context.Context, s logical.Storage) ([]string, error) {
	return configEntries.list(ctx, s)
}

// page returns up to limit names after after (all of them when limit is 0).
// The refresh loop asks for all of them when it starts, which loads the
// index then, not on an operator's first LIST.
func (x *nameIndex) page(ctx context.Context, s logical.Storage, after string, limit int) ([]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.load(ctx, s); err != nil {
		return nil, err
	}
	return slices.Clone(pageOf(x.names, after, limit)), nil
}

// pageOf is the part of sorted that a paginated LIST returns: up to limit
// names after after (all of them when limit is 0).
func pageOf(sorted []string, after string, limit int) []string {
	start := 0
	if after != "" {
		start = sort.Search(len(sorted), func(i int) bool { return sorted[i] > after })
	}
	end := len(sorted)
	if limit > 0 {
		end = min(end, start+limit)
	}
	return sorted[start:end]
}

// load lists the names from storage unless loaded; x.mu is held.
func (x *nameIndex) load(ctx context.Context, s logical.Storage) error {
	if x.names != nil {
		return nil
	}
	names, err := x.list(ctx, s)
	if err != nil {
		return err
	}
	x.names = append(make([]string, 0, len(names)), names...)
	sort.Strings(x.names)
	return nil
}

// add records a written config's name.
func (x *nameIndex) add(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.names == nil {
		return // loaded from storage on first use, name included
	}
	if i, found := slices.BinarySearch(x.names, name); !found {
		x.names = slices.Insert(x.names, i, name)
	}
}

// remove forgets a deleted config's name.
func (x *nameIndex) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if i, found := slices.BinarySearch(x.names, name); found {
		x.names = slices.Delete(x.names, i, i+1)
	}
}

// reset makes the next page reload from storage.
func (x *nameIndex) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.names = nil
}

// listFields are the paging fields of LIST config/ and LIST status/, as in
// Vault's own paginated lists.
var listFields = map[string]*framework.FieldSchema{
	"after": {Type: framework.TypeString, Query: true, Description: "List the names that sort after this one (for paging: the last name of the previous page)."},
	"limit": {Type: framework.TypeInt, Query: true, Description: fmt.Sprintf("Return at most this many names (1-%d); all when not given.", maxListLimit)},
}

// pageFields are a paginated LIST's after and limit (0: no limit).
func pageFields(d *framework.FieldData) (after string, limit int, err error) {
	if after, _, err = field[string](d, "after"); err != nil {
		return "", 0, err
	}
	limit, sent, err := field[int](d, "limit")
	if err != nil || (sent && (limit < 1 || limit > maxListLimit)) {
		return "", 0, fmt.Errorf("limit must be between 1 and %d", maxListLimit)
	}
	return after, limit, nil
}

// pathNamesList answers LIST config/ and LIST status/: the configured names, a page at a time.
func (b *backend) pathNamesList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	after, limit, err := pageFields(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	names, err := b.names.page(ctx, req.Storage, after, limit)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}
