//go:build !race

package tokenbroker

const raceEnabled = false
