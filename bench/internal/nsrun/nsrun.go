package nsrun

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a thread switched into the network namespace name (as
// `ip netns` names it) and switches the thread back afterwards. If the
// thread cannot be switched back it is left locked, so the Go runtime
// discards it instead of reusing it in the wrong namespace.
func Do(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("nsrun: current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("nsrun: namespace %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("nsrun: enter %s: %w", name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Stay locked: the thread dies with the goroutine.
		return fmt.Errorf("nsrun: leave %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}
