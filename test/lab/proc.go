package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a process started with Start. The pidfd lets Close signal and
// wait for it without racing the caller's own cmd.Wait, which may run in
// another goroutine: Close never calls Wait or reads ProcessState.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	stop func() bool // unregisters the context.AfterFunc

	mu     sync.Mutex // guards pidfd against the AfterFunc
	pidfd  int
	closed bool
}

// Start runs args in namespace ns (`ip netns exec NS args...`) in the
// background, in its own process group, with standard output and error
// appended to logfile ("" discards them). The process group is killed when
// ctx is done or the lab is closed; Close waits until the process has
// exited. The caller may Signal and Wait the returned command (Wait collects
// its status; Close does not reap it).
func (l *Lab) Start(ctx context.Context, ns, logfile string, args ...string) (*exec.Cmd, error) {
	full, err := l.resolve(ns)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("lab: Start: no command")
	}
	argv := append([]string{"netns", "exec", full}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if logfile != "" {
		f, err := os.OpenFile(logfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lab: Start: %w", err)
		}
		defer f.Close() // the child has its own copy
		cmd.Stdout, cmd.Stderr = f, f
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("lab %s: Start after Close", l.prefix)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ip %s: %w", strings.Join(argv, " "), err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid}
	// The child cannot have been reaped yet: nobody else has the Cmd.
	p.pidfd, err = unix.PidfdOpen(p.pid, 0)
	if err != nil {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("lab: pidfd_open %d: %w", p.pid, err)
	}
	p.stop = context.AfterFunc(ctx, p.signal)
	l.procs = append(l.procs, p)
	return cmd, nil
}

// signal kills the process and its group.
func (p *proc) signal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
	// Members of the group may outlive its leader (a daemon's hooks).
	_ = unix.Kill(-p.pid, unix.SIGKILL)
}

// kill signals the process group and waits for the leader to exit.
func (p *proc) kill(ctx context.Context) error {
	p.stop()
	p.signal()
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closed = true
		unix.Close(p.pidfd)
	}()
	// A pidfd becomes readable when the process exits, reaped or not.
	for {
		fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lab: poll pidfd of %d: %w", p.pid, err)
		}
		if n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("lab: process %d (%s) did not exit: %w", p.pid, strings.Join(p.cmd.Args, " "), ctx.Err())
		}
	}
}

// WaitLog waits until file contains substr, for readiness messages such as
// labtool udpsink's "listening" line. It polls: tests only.
func WaitLog(ctx context.Context, file, substr string) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		b, err := os.ReadFile(file)
		if err == nil && strings.Contains(string(b), substr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: waiting for %q in %s: %w (log: %q)", substr, file, ctx.Err(), b)
		case <-t.C:
		}
	}
}
