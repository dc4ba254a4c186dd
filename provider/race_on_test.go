//go:build race

package provider

// raceEnabled: the race detector slows the random trials about tenfold.
const raceEnabled = true
