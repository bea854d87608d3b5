package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runTunPair models a point-to-point link (a PPP session, a tunnel): a tun
// device in this namespace and one in the peer namespace, with every
// packet copied between them. Both devices exist while it runs and go when
// it exits, as a session's interfaces do. SIGUSR1 takes the carrier of the
// local device away, SIGUSR2 gives it back. Addresses and link state are
// the caller's, as pppd leaves them to its ip-up script.
func runTunPair(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tunpair", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	name := fs.String("name", "ppp0", "`name` of both tun devices")
	peer := fs.String("peer", "", "named network `namespace` of the peer device (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *peer == "" || fs.NArg() > 0 {
		return errors.New("want --peer NAMESPACE and no arguments")
	}
	local, err := openTun(*name)
	if err != nil {
		return err
	}
	defer local.Close()
	remote, err := openTunIn(*peer, *name)
	if err != nil {
		return err
	}
	defer remote.Close()
	fmt.Println("tunpair: up")

	carrier := make(chan os.Signal, 4)
	signal.Notify(carrier, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(carrier)
	var wg sync.WaitGroup
	wg.Go(func() { copyPackets(remote, local) })
	wg.Go(func() { copyPackets(local, remote) })
	defer wg.Wait()
	defer local.Close() // unblocks the copies; the devices go
	defer remote.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-carrier:
			on := 0
			if s == syscall.SIGUSR2 {
				on = 1
			}
			if err := setCarrier(local, on); err != nil {
				return err
			}
			fmt.Printf("tunpair: carrier %d\n", on)
		}
	}
}

// tunSetCarrier is TUNSETCARRIER, _IOW('T', 226, int).
const tunSetCarrier = 0x400454e2

func setCarrier(f *os.File, on int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetPointerInt(int(fd), tunSetCarrier, on) }); err != nil {
		return err
	}
	if ierr != nil {
		return fmt.Errorf("TUNSETCARRIER: %w", ierr)
	}
	return nil
}

func copyPackets(dst, src *os.File) {
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return // closed
		}
		if _, err := dst.Write(buf[:n]); err != nil && !errors.Is(err, unix.EIO) {
			// EIO: the peer device is down; the packet is lost, as
			// on a real link.
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
	}
}

// openTun creates tun device name (no packet information header) in the
// calling thread's namespace.
func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// openTunIn is openTun in the named network namespace.
func openTunIn(ns, name string) (*os.File, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			done <- result{nil, fmt.Errorf("enter %s: %w", ns, err)}
			return // the thread stays locked and is discarded
		}
		f, err := openTun(name)
		if serr := netns.Set(orig); serr != nil {
			done <- result{f, errors.Join(err, serr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{f, err}
	}()
	r := <-done
	return r.f, r.err
}
