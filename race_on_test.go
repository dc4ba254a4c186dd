//go:build race

package tokenbroker

// raceEnabled: the race detector slows goroutine-heavy trials about tenfold.
const raceEnabled = true
