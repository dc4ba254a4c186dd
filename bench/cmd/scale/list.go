package main

// The paginated LIST (6): LIST config/?after=<last>&limit=<L> until a page
// comes back short, timing each page. A plugin without paging answers the
// first page with every name; that is recorded as such.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

func (d *driver) listPhase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	n, limit := d.cfg.names, d.cfg.listLimit
	figure := fmt.Sprintf("5. LIST %s/config with limit=%d through all %d names", mount, limit, n)
	var (
		pages latencies
		seen  int
		after string
		t0    = time.Now()
	)
	for page := 0; page <= n/limit+1; page++ {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if after != "" {
			q.Set("after", after)
		}
		r, err := d.api.do(ctx, "LIST", mount+"/config?"+q.Encode(), nil)
		if err == nil && r.status != http.StatusOK && r.status != http.StatusNotFound { // 404: an empty page
			err = fmt.Errorf("HTTP %d: %s", r.status, oneLine(string(r.body)))
		}
		if err != nil {
			return fmt.Errorf("page %d: %w", page+1, err)
		}
		pages = append(pages, r.took)
		var v struct {
			Data struct {
				Keys []string `json:"keys"`
			} `json:"data"`
		}
		if r.status == http.StatusOK {
			if err := r.decode(&v); err != nil {
				return fmt.Errorf("page %d: %w", page+1, err)
			}
		}
		keys := v.Data.Keys
		if len(keys) > limit {
			d.rep.check(figure, "each page < 100 ms", false, "paging not supported: the first LIST answered all %d names in one page in %s", len(keys), msec(r.took))
			return nil
		}
		if len(keys) > 0 && after != "" && keys[0] <= after {
			return fmt.Errorf("page %d starts at %q, not after %q: after is ignored", page+1, keys[0], after)
		}
		if !slices.IsSorted(keys) {
			return fmt.Errorf("page %d is not sorted", page+1)
		}
		seen += len(keys)
		if len(keys) < limit {
			break
		}
		after = keys[len(keys)-1]
	}
	total := time.Since(t0)
	pages = pages.sorted()
	d.rep.check(figure, "each page < 100 ms, every name listed once", pages.q(1) < 100*time.Millisecond && seen == n,
		"%d pages, %d names in %.1f s; per page %s", len(pages), seen, total.Seconds(), pages.summary())
	return nil
}
