//go:build race

package engine

// raceOn: sync.Pool drops some of what it is given under the race detector.
const raceOn = true
