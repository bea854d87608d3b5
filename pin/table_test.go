package pin

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

var twoUplinks = []Uplink{
	{Name: "isp2", Ifname: "eth2", Mark: 0x02000000},
	{Name: "isp1", Ifname: "eth1", Mark: 0x01000000},
}

func TestApplyCurrentRemove(t *testing.T) {
	ns := newNS(t, "pin-tbl")
	tb := openTable(t, ns)

	if cur, err := tb.Current(); err != nil || cur != nil {
		t.Fatalf("Current before Apply = %v, %v; want nothing", cur, err)
	}
	changed, err := tb.Apply(twoUplinks)
	if err != nil || !changed {
		t.Fatalf("first Apply = %v, %v; want changed", changed, err)
	}
	changed, err = tb.Apply(twoUplinks)
	if err != nil || changed {
		t.Fatalf("second Apply = %v, %v; want unchanged", changed, err)
	}
	want := []Uplink{twoUplinks[1], twoUplinks[0]}
	cur, err := tb.Current()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, cur); d != "" {
		t.Fatalf("Current (-want +got):\n%s", d)
	}

	// A second Table (a restarted daemon) adopts it: same uplinks, no write.
	tb2 := openTable(t, ns)
	if changed, err := tb2.Apply(want); err != nil || changed {
		t.Fatalf("Apply by a new Table = %v, %v; want unchanged", changed, err)
	}

	// A renamed interface and an uplink without one: rewritten.
	moved := []Uplink{{Name: "isp1", Ifname: "wan1", Mark: 0x01000000}, {Name: "isp2", Mark: 0x02000000}}
	if changed, err := tb.Apply(moved); err != nil || !changed {
		t.Fatalf("Apply after rename = %v, %v; want changed", changed, err)
	}
	if cur, _ := tb.Current(); !cmp.Equal(cur, moved) {
		t.Fatalf("Current after rename = %v, want %v", cur, moved)
	}

	// Foreign additions to the table: a chain, a rule in a base chain.
	// Each makes Apply rewrite it.
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd()))
	if err != nil {
		t.Fatal(err)
	}
	c.AddChain(&nftables.Chain{Name: "extra", Table: table()})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if changed, err := tb.Apply(moved); err != nil || !changed {
		t.Fatalf("Apply after a foreign chain = %v, %v; want changed", changed, err)
	}
	if _, err := c.ListChain(table(), "extra"); err == nil {
		t.Fatal("foreign chain survived Apply")
	}
	c.AddRule(&nftables.Rule{Table: table(), Chain: &nftables.Chain{Name: chainPre, Table: table()}, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if changed, err := tb.Apply(moved); err != nil || !changed {
		t.Fatalf("Apply after a foreign rule = %v, %v; want changed", changed, err)
	}
	if changed, err := tb.Apply(moved); err != nil || changed {
		t.Fatalf("Apply after the repair = %v, %v; want unchanged", changed, err)
	}

	if err := tb.Remove(); err != nil {
		t.Fatal(err)
	}
	if tables, err := c.ListTables(); err != nil || len(tables) != 0 {
		t.Fatalf("tables after Remove: %v, %v", tables, err)
	}
	if err := tb.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestApplyRejects(t *testing.T) {
	for _, ups := range [][]Uplink{
		{{Name: "a", Ifname: "eth1", Mark: 0x1}}, // outside the mask
		{{Name: "a", Ifname: "eth1"}},            // no mark
		{{Name: "a", Ifname: "eth1", Mark: 0x01000000}, {Name: "b", Ifname: "eth1", Mark: 0x02000000}}, // shared interface
		{{Name: "a", Ifname: "eth1", Mark: 0x01000000}, {Name: "b", Ifname: "eth2", Mark: 0x01000000}}, // shared mark
		{{Name: "a", Ifname: "a-very-long-interface-name", Mark: 0x01000000}},
	} {
		if err := validate(DefaultMask, ups); err == nil {
			t.Errorf("validate(%v): no error", ups)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err   error
		stage int
		want  bool
	}{
		{unix.EPROTONOSUPPORT, laterErr, true},
		{unix.EINVAL, openErr, true},
		{unix.EINVAL, firstApplyErr, false},
		{unix.ENOENT, firstApplyErr, true},
		{unix.ENOENT, laterErr, false},
		{unix.EPERM, openErr, false},
	} {
		err := classify(fmt.Errorf("x: %w", c.err), c.stage)
		if got := errors.Is(err, ErrUnsupported); got != c.want {
			t.Errorf("classify(%v, %d) unsupported = %v, want %v", c.err, c.stage, got, c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("classify(%v) lost the cause", c.err)
		}
	}
}
