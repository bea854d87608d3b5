package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning means nothing listens on the status socket.
var ErrNotRunning = errors.New("uplinkd is not running")

// maxLine bounds one response line: a snapshot of 64 uplinks with their
// transitions is well below it.
const maxLine = 16 << 20

// Get asks the daemon at socket for a snapshot.
func Get(ctx context.Context, socket string) (*Snapshot, error) {
	return single(ctx, socket, "status", func(r response) *Snapshot { return r.Status })
}

// Reload asks the daemon to re-read its configuration.
func Reload(ctx context.Context, socket string) (*ReloadResult, error) {
	return single(ctx, socket, "reload", func(r response) *ReloadResult { return r.Reload })
}

// single sends op and returns the part of the one response pick takes.
func single[T any](ctx context.Context, socket, op string, pick func(response) *T) (*T, error) {
	var v *T
	err := exchange(ctx, socket, op, func(r response) (bool, error) {
		if v = pick(r); v == nil {
			return false, fmt.Errorf("%s: response without a result", op)
		}
		return false, nil
	})
	return v, err
}

// Watch calls fn with a snapshot now and after every change, until ctx is
// done (Watch then returns nil), fn returns an error, or the daemon stops.
func Watch(ctx context.Context, socket string, fn func(*Snapshot) error) error {
	err := exchange(ctx, socket, "watch", func(r response) (bool, error) {
		if r.Status == nil {
			return false, errors.New("status: response without a snapshot")
		}
		return true, fn(r.Status)
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// exchange sends op and passes each response to fn while it returns true.
func exchange(ctx context.Context, socket, op string, fn func(response) (bool, error)) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return dialError(socket, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if op != "watch" {
		// Status and reload answer within the server's own timeouts.
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	}
	req, _ := json.Marshal(request{Op: op})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("status socket %s: %w", socket, err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var r response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("status socket %s: bad response: %w", socket, err)
		}
		if r.Error != "" {
			return fmt.Errorf("uplinkd: %s", r.Error)
		}
		more, err := fn(r)
		if err != nil || !more {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("status socket %s: %w", socket, err)
	}
	return fmt.Errorf("status socket %s: uplinkd closed the connection (stopping?)", socket)
}

// dialError explains why the socket could not be reached.
func dialError(socket string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("status socket %s: permission denied; run as root or as a member of the socket's group", socket)
	}
	return fmt.Errorf("status socket %s: %w", socket, err)
}
