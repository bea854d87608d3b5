package tools

import (
	"context"
	"fmt"
	"time"
)

// Tool is one failover tool running in a lab.
type Tool interface {
	Name() string
	// Start installs the tool's routing and starts its monitoring.
	Start(ctx context.Context) error
	// WaitBalanced waits until traffic is balanced over both ISPs.
	WaitBalanced(ctx context.Context) error
	// Reset brings the tool back to a clean start between runs.
	Reset(ctx context.Context) error
	// Stop stops the tool.
	Stop() error
}

// poll calls ok every interval until it reports true, it fails, or ctx is
// done.
func poll(ctx context.Context, interval time.Duration, what string, ok func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		done, err := ok()
		if done {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
