package ispemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client talks to a running emulator's control socket. The socket is a
// file, so the client may run in any network namespace.
type Client struct {
	Control string // path of the control socket
}

// Set sets the mode of requests arriving on iface ("isp1", "isp2").
func (c Client) Set(ctx context.Context, iface string, m Mode) error {
	_, err := c.Do(ctx, fmt.Sprintf("set %s loss=%g delay=%v jitter=%v captive=%t", iface, m.Loss, m.Delay, m.Jitter, m.Captive))
	return err
}

// Stats returns the emulator's counters by interface.
func (c Client) Stats(ctx context.Context) (map[string]Counters, error) {
	out, err := c.Do(ctx, "stats")
	if err != nil {
		return nil, err
	}
	var st map[string]Counters
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("ispemu stats: %w", err)
	}
	return st, nil
}

// Do sends one command line and returns the answer after "ok ".
func (c Client) Do(ctx context.Context, line string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Control)
	if err != nil {
		return "", fmt.Errorf("ispemu: %w", err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return "", fmt.Errorf("ispemu %q: %w", line, err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("ispemu %q: %w", line, err)
	}
	answer = strings.TrimSpace(answer)
	if rest, ok := strings.CutPrefix(answer, "ok "); ok {
		return rest, nil
	}
	return "", fmt.Errorf("ispemu %q: %s", line, strings.TrimPrefix(answer, "error "))
}
