package testutil

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNS runs fn on an OS thread switched into the named network namespace,
// for creating sockets there (a socket keeps its namespace). The thread is
// returned to the scheduler only once it is back in its original
// namespace; if switching back fails it stays locked and dies with its
// goroutine.
func InNS(name string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("namespace %s: %w", name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave namespace %s: %w", name, err) // the thread stays locked and exits with us
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}
