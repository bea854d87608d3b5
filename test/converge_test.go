package test

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/uplinkd/uplinkd/test/kernelview"
	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 13 (acceptance 4): random sequences of link, carrier, address,
// name and health changes, foreign deletions of uplinkd's objects, kill -9
// with restarts and reloads, each followed by a check, once uplinkd's
// status shows the states the lab requires, that the kernel holds exactly
// what the configuration and the links require (kernelview, which does not
// use netops). Every sequence starts from the restored lab, and has its own
// seed: a mismatch prints it, and UPLINKD_SEED=N replays that sequence
// alone. 30 sequences, 300 with UPLINKD_LONG=1.
func TestRandomConvergence(t *testing.T) {
	n, limit := 30, 4*time.Minute
	if long() {
		n, limit = 300, 30*time.Minute
	}
	var seeds []int64
	if s := os.Getenv("UPLINKD_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("UPLINKD_SEED=%q: %v", s, err)
		}
		seeds = []int64{seed}
	} else {
		base := time.Now().UnixNano() % 1e9 * 1000
		for i := range n {
			seeds = append(seeds, base+int64(i))
		}
	}
	c := newConvRig(t, limit)
	c.startDaemon()
	c.settle(0)
	counts := map[string]int{}
	for _, seed := range seeds {
		c.steps = nil
		c.restore()
		rng := rand.New(rand.NewSource(seed))
		for range 4 + rng.Intn(5) {
			op := c.randomStep(rng)
			counts[op]++
		}
		c.startDaemon()
		c.settle(seed)
	}
	t.Logf("%d sequences converged (seeds %d..%d); steps: %v", len(seeds), seeds[0], seeds[len(seeds)-1], counts)
}

// convOps are the steps a sequence is made of, by name; each returns false
// when it does not apply to the lab as it is (another is drawn).
var convOps = []struct {
	name string
	do   func(c *convRig, rng *rand.Rand, i *convISP) bool
}{
	{"link-down", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if !i.present() || i.adminDown {
			return false
		}
		_, err := c.lab.IP(c.ctx, lab.Router, "link", "set", "dev", i.dev, "down")
		c.must(err)
		i.adminDown = true
		return true
	}},
	{"link-up", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if !i.present() || !i.adminDown {
			return false
		}
		c.must(c.linkUp(i))
		return true
	}},
	{"carrier-down", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.deleted || i.carrierDown {
			return false
		}
		c.must(c.lab.CarrierDown(c.ctx, i.name))
		i.carrierDown = true
		return true
	}},
	{"carrier-up", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.deleted || !i.carrierDown {
			return false
		}
		c.must(c.lab.CarrierUp(c.ctx, i.name))
		i.carrierDown = false
		return true
	}},
	// A carrier loss and return, back to back: the kernel deletes the
	// link's nexthop objects without a notification, and the link may
	// look unchanged by the time uplinkd reads it.
	{"carrier-flap", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.deleted || i.carrierDown {
			return false
		}
		c.must(c.lab.CarrierDown(c.ctx, i.name))
		c.must(c.lab.CarrierUp(c.ctx, i.name))
		return true
	}},
	{"delete", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.deleted {
			return false
		}
		c.must(c.lab.DeleteRouterLink(c.ctx, i.name))
		i.deleted, i.away = true, false
		return true
	}},
	{"recreate", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if !i.deleted {
			return false
		}
		c.must(c.lab.RecreateRouterLink(c.ctx, i.name))
		i.deleted, i.adminDown, i.carrierDown = false, false, false
		return true
	}},
	{"rename-away", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if !i.present() {
			return false
		}
		c.must(c.lab.RenameRouterLink(c.ctx, i.dev, i.renamed))
		i.away, i.adminDown = true, false
		return true
	}},
	{"rename-back", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.deleted || !i.away {
			return false
		}
		c.must(c.lab.RenameRouterLink(c.ctx, i.renamed, i.dev))
		i.away, i.adminDown = false, false
		return true
	}},
	{"readdress", func(c *convRig, rng *rand.Rand, i *convISP) bool {
		// The ISP routes the LAN back to the new address: its end of
		// the link must be up.
		if i.deleted || i.adminDown || i.carrierDown {
			return false
		}
		next := i.addrs[rng.Intn(len(i.addrs))]
		if next == i.addr {
			return false
		}
		c.must(c.lab.Readdress(c.ctx, i.name, next))
		i.addr = next
		c.steps[len(c.steps)-1] += " " + next.String()
		return true
	}},
	{"blackhole", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if i.blackholed {
			return false
		}
		c.must(c.lab.Blackhole(c.ctx, i.name, true))
		i.blackholed = true
		return true
	}},
	{"unblackhole", func(c *convRig, _ *rand.Rand, i *convISP) bool {
		if !i.blackholed {
			return false
		}
		c.must(c.lab.Blackhole(c.ctx, i.name, false))
		i.blackholed = false
		return true
	}},
	{"foreign-del-rule", func(c *convRig, rng *rand.Rand, _ *convISP) bool {
		return c.foreignDelete(rng, "rule")
	}},
	{"foreign-del-route", func(c *convRig, rng *rand.Rand, _ *convISP) bool {
		return c.foreignDelete(rng, "route")
	}},
	{"foreign-del-nexthop", func(c *convRig, rng *rand.Rand, _ *convISP) bool {
		return c.foreignDelete(rng, "nexthop")
	}},
	{"foreign-del-nft", func(c *convRig, rng *rand.Rand, _ *convISP) bool {
		return c.foreignDelete(rng, "nft")
	}},
	{"kill-9", func(c *convRig, _ *rand.Rand, _ *convISP) bool {
		if !c.running {
			return false
		}
		c.kill()
		return true
	}},
	{"start", func(c *convRig, _ *rand.Rand, _ *convISP) bool {
		if c.running {
			return false
		}
		c.startDaemon()
		return true
	}},
	{"reload", func(c *convRig, rng *rand.Rand, _ *convISP) bool {
		w := map[string]int{"isp1": 1 + rng.Intn(4), "isp2": 1 + rng.Intn(4)}
		if equalWeights(w, c.weights) {
			return false
		}
		c.steps[len(c.steps)-1] += fmt.Sprintf(" weights %d:%d", w["isp1"], w["isp2"])
		c.setWeights(w)
		return true
	}},
}

// randomStep draws and applies one applicable step and returns its name.
func (c *convRig) randomStep(rng *rand.Rand) string {
	c.t.Helper()
	for {
		op := convOps[rng.Intn(len(convOps))]
		i := c.isps[rng.Intn(len(c.isps))]
		c.step("%s %s", op.name, i.name)
		if op.do(c, rng, i) {
			return op.name
		}
		c.steps = c.steps[:len(c.steps)-1]
	}
}

// foreignDelete deletes one of uplinkd's objects of the given kind, as an
// administrator's command would (false when there is none).
func (c *convRig) foreignDelete(rng *rand.Rand, kind string) bool {
	c.t.Helper()
	v, err := kernelview.Read(c.ctx, c.lab.NS(lab.Router))
	c.must(err)
	var cmds [][]string
	switch kind {
	case "rule":
		for _, r := range v.Rules {
			if r.Protocol != "201" {
				continue
			}
			args := []string{"rule", "del", "priority", strconv.Itoa(r.Priority), "from", r.Src}
			if r.Iif != "" {
				args = append(args, "iif", r.Iif)
			}
			if r.Fwmark != "" {
				args = append(args, "fwmark", r.Fwmark+"/"+r.Fwmask)
			}
			cmds = append(cmds, append(args, "lookup", r.Table))
		}
	case "route":
		for _, r := range v.Routes {
			if r.Protocol == "201" {
				cmds = append(cmds, []string{"route", "del", r.Dst, "table", r.Table, "proto", "201"})
			}
		}
	case "nexthop":
		for _, n := range v.Nexthops {
			if n.Protocol == "201" {
				cmds = append(cmds, []string{"nexthop", "del", "id", strconv.FormatUint(uint64(n.ID), 10)})
			}
		}
	case "nft":
		if !strings.Contains(strings.Join(v.NFTables, " "), "uplinkd") {
			return false
		}
		c.steps[len(c.steps)-1] = "foreign-del-nft (table inet uplinkd)"
		c.nft(func(n *nftables.Conn) error {
			n.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "uplinkd"})
			return n.Flush()
		})
		return true
	}
	if len(cmds) == 0 {
		return false
	}
	cmd := cmds[rng.Intn(len(cmds))]
	c.steps[len(c.steps)-1] = "foreign: ip " + strings.Join(cmd, " ")
	if _, err := c.lab.IP(c.ctx, lab.Router, cmd...); err != nil {
		// uplinkd may have replaced it meanwhile (a restart, a repair):
		// not the test's concern.
		c.steps[len(c.steps)-1] += " (failed: " + err.Error() + ")"
	}
	return true
}
