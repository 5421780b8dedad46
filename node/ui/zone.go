package ui

import (
	"sync/atomic"
	"time"
	_ "time/tzdata" // ui.time_zone loads on a host without a zone database
)

// zone is the zone the interface writes times in (ui.time_zone): the node's, in a container
// UTC, is not its people's. Set by New; every server of a process shares it.
var zone atomic.Pointer[time.Location]

// location is the interface's zone.
func location() *time.Location {
	if z := zone.Load(); z != nil {
		return z
	}
	return time.Local
}

// zoneName is the IANA name of the interface's zone, for the page's script.
func zoneName() string { return location().String() }

// local is t in the interface's zone.
func local(t time.Time) time.Time {
	if z := zone.Load(); z != nil {
		return t.In(z)
	}
	return t.Local()
}

// setZone sets the interface's zone by its IANA name; "" keeps the host's.
func setZone(name string) error {
	if name == "" {
		return nil
	}
	z, err := time.LoadLocation(name)
	if err != nil {
		return err
	}
	zone.Store(z)
	return nil
}
