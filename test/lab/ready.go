package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// When a lab is ready for traffic.
//
// A link that has just come up is not usable at once: the kernel's link
// watcher must first take in its carrier, which sets its operational state
// (operstate UP) and tells IPv6 the link is ready. Until then IPv6 has no
// link-local address on it, does not answer neighbour solicitations and
// sends nothing, so the first packets through it wait for a retransmitted
// solicitation, a second later. The link watcher handles the carrier of a
// veth at once only when the veth's ifindex differs from its peer's
// (linkwatch_urgent_event: "ifindex != iflink" means a stacked device);
// with equal indexes (easy in fresh namespaces, which number from 2) the
// event waits for the watcher's next run, up to a second later. The lab
// therefore gives every veth pair two indexes of its own (vethIndexes),
// and New waits until every link is operationally up (waitLinksUp).

// firstIndex is the first interface index the lab gives a veth end; lo is
// 1 and the kernel numbers from 2, so a lab's veths never collide with an
// index the kernel picks for something else.
const firstIndex = 10

// vethIndexes returns the interface indexes of a new veth pair: distinct
// from each other, and from those of every veth the lab made before, so
// that a re-created pair gets new ones.
func (l *Lab) vethIndexes() (end, peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastIndex < firstIndex {
		l.lastIndex = firstIndex - 1
	}
	l.lastIndex += 2
	return strconv.Itoa(l.lastIndex - 1), strconv.Itoa(l.lastIndex)
}

// vethArgs returns the ip arguments, run in the namespace of name, that
// create the veth pair name and peer (in namespace peerNS), each with an
// index of its own.
func (l *Lab) vethArgs(name, peer, peerNS string) []string {
	i, pi := l.vethIndexes()
	return []string{"link", "add", name, "index", i, "type", "veth", "peer", "name", peer, "index", pi, "netns", l.NS(peerNS)}
}

// waitLinksUp waits until every link of links (namespace -> names) is
// operationally up.
func (l *Lab) waitLinksUp(ctx context.Context, links map[string][]string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for ns, names := range links {
		for {
			down, err := l.linksDown(ctx, ns, names)
			if err != nil {
				return err
			}
			if len(down) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("lab: links of %s not operationally up: %v: %w", ns, down, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// linksDown returns those of names in ns that are not operationally up,
// with their state.
func (l *Lab) linksDown(ctx context.Context, ns string, names []string) ([]string, error) {
	out, err := l.IP(ctx, ns, "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name      string `json:"ifname"`
		Operstate string `json:"operstate"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("lab: ip -j link show in %s: %w", ns, err)
	}
	state := make(map[string]string, len(links))
	for _, k := range links {
		state[k.Name] = k.Operstate
	}
	var down []string
	for _, n := range names {
		if s := state[n]; s != "UP" {
			down = append(down, n+" "+s)
		}
	}
	return down, nil
}
