package testutil

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNS runs fn on an OS thread switched into the named network namespace,
// for creating sockets there (a socket keeps its namespace).
func InNS(name string, fn func()) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	defer h.Close()
	return InNSHandle(h, func() error {
		fn()
		return nil
	})
}

// InNSHandle runs fn on a fresh OS thread switched into ns and returns
// fn's error. The thread is returned to the scheduler only once it is back
// in its original namespace; if switching back fails it stays locked and
// the runtime discards it when its goroutine exits.
func InNSHandle(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns failed, so the thread is still where it was; but
			// do not trust it.
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
