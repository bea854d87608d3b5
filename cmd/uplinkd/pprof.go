//go:build pprof

package main

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// A build with -tags pprof (for measurements only, never shipped) writes a
// CPU profile to $UPLINKD_CPUPROFILE, starting $UPLINKD_CPUPROFILE_AFTER
// seconds (default 10) after start, for $UPLINKD_CPUPROFILE_SECONDS
// (default 30), and then, if $UPLINKD_MEMPROFILE is set, the allocations
// since start to that file.
func init() {
	path := os.Getenv("UPLINKD_CPUPROFILE")
	if path == "" {
		return
	}
	seconds := func(key string, def int) time.Duration {
		if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
		return time.Duration(def) * time.Second
	}
	after, span := seconds("UPLINKD_CPUPROFILE_AFTER", 10), seconds("UPLINKD_CPUPROFILE_SECONDS", 30)
	go func() {
		time.Sleep(after)
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		if pprof.StartCPUProfile(f) != nil {
			return
		}
		time.Sleep(span)
		pprof.StopCPUProfile()
		// $UPLINKD_MEMPROFILE, if set, gets the allocations since start.
		if mp := os.Getenv("UPLINKD_MEMPROFILE"); mp != "" {
			if mf, err := os.Create(mp); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(mf, 0)
				mf.Close()
			}
		}
	}()
}
