package main

import (
	"time"
)

// parentWatch notices when the Vault that started this plugin is gone. After
// a kill -9 of Vault the plugin is re-parented (to init or a subreaper) and
// would otherwise live on, refreshing chains that another node now owns.
type parentWatch struct {
	parent   int        // the parent's pid at start
	getppid  func() int // os.Getppid
	interval time.Duration
}

// alive reports whether the process still has the parent it started with.
func (w *parentWatch) alive() bool { return w.getppid() == w.parent }

// run calls gone once the parent changed, checking every interval, until stop closes.
func (w *parentWatch) run(stop <-chan struct{}, gone func()) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if !w.alive() {
				gone()
				return
			}
		}
	}
}
