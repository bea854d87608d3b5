package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// The garbage collector's pacing. A carrier change with 256 uplinks plans
// and diffs some 1,500 routes, rules and nexthop objects; with Go's
// default GOGC=100 on a heap of a few MiB a collection runs during most
// reconciles and delays the routing change (make bench-scale: 256 uplinks,
// carrier loss to last routing change, median 6.95 ms with GOGC=100, 4.25
// ms with 400). uplinkd's live heap is small and does not grow with the
// kernel's tables (the reconciler keeps only its own objects), so it
// collects less often, under a hard bound: the runtime collects as often
// as it must to stay under gcMemoryLimit, whatever the percentage says.
const (
	gcPercent     = 400
	gcMemoryLimit = 64 << 20 // bytes of Go heap and runtime
)

// tuneGC applies gcPercent and gcMemoryLimit, unless the environment sets
// GOGC or GOMEMLIMIT (the operator's choice wins).
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		log.Debug("garbage collector tuned by the environment", "GOGC", os.Getenv("GOGC"), "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return
	}
	debug.SetMemoryLimit(gcMemoryLimit)
	debug.SetGCPercent(gcPercent)
}
