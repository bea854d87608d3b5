package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uplinkd/uplinkd/test/ispemu"
)

// StartISPEmu runs the ISP emulator (`labtool ispemu`, see package ispemu)
// in the Internet namespace, with its control socket and log in dir, and
// waits until it answers. From then on the Internet namespace's kernel no
// longer answers echo requests itself; the emulator does, by ISP (ISP1,
// ISP2), healthy until told otherwise. It runs until the lab is closed.
// extra are more flags of `labtool ispemu`, such as "--tcp",
// "198.18.0.1:443" for a TCP probe target.
func (l *Lab) StartISPEmu(ctx context.Context, labtool, dir string, extra ...string) (ispemu.Client, error) {
	c := ispemu.Client{Control: filepath.Join(dir, "ispemu.sock")}
	log := filepath.Join(dir, "ispemu.log")
	cmd, err := l.Start(ctx, Inet, log, append([]string{labtool, "ispemu", "--control", c.Control}, extra...)...)
	if err != nil {
		return ispemu.Client{}, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel() // no use waiting for a readiness line
		case <-wctx.Done():
		}
	}()
	if err := WaitLog(wctx, log, "listening"); err != nil {
		b, _ := os.ReadFile(log)
		return ispemu.Client{}, fmt.Errorf("lab: ISP emulator did not start: %w: %s", err, bytes.TrimSpace(b))
	}
	return c, nil
}

// GatewayARP switches ARP on isp's gateway interface on or off. Off, the
// ISP's router stops answering ARP while its link stays up, as a crashed
// router behind a switch or media converter would: the router's neighbour
// entry for the gateway eventually fails. (A NOARP interface also sends its
// own frames to itself, so the ISP stops delivering to the router at once.)
func (l *Lab) GatewayARP(ctx context.Context, isp string, on bool) error {
	if _, err := l.lookupISP(isp); err != nil {
		return err
	}
	state := "off"
	if on {
		state = "on"
	}
	_, err := l.IP(ctx, isp, "link", "set", ispDownLink, "arp", state)
	return err
}
