package pin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

func TestWatch(t *testing.T) {
	ns := newNS(t, "pin-watch")
	tb := openTable(t, ns)
	if _, err := tb.Apply(twoUplinks); err != nil {
		t.Fatal(err)
	}
	// Room for every signal, so that a wrong one (for our own Apply)
	// shows up in the count.
	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := tb.Watch(ctx, changed); err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	foreign, err := nftables.New(nftables.WithNetNSFd(ns.fd()))
	if err != nil {
		t.Fatal(err)
	}
	expectSignal := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
		if n := len(changed); n != 0 {
			t.Fatalf("%d more signals after %s, want one", n, what)
		}
	}

	// Our own change, then a foreign table elsewhere: neither is reported.
	// Then a foreign delete of one of our chains is.
	if changed, err := tb.Apply(twoUplinks[:1]); err != nil || !changed {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	other := foreign.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "other"})
	foreign.AddChain(&nftables.Chain{Name: "c", Table: other})
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	out := &nftables.Chain{Name: chainOut, Table: table()}
	foreign.FlushChain(out)
	foreign.DelChain(out)
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	expectSignal("a foreign delete of the output chain")

	// The daemon re-applies (not reported), then `flush ruleset`.
	if changed, err := tb.Apply(twoUplinks[:1]); err != nil || !changed {
		t.Fatalf("repair Apply = %v, %v", changed, err)
	}
	if changed, err := tb.Apply(twoUplinks[:1]); err != nil || changed {
		t.Fatalf("Apply after the repair = %v, %v; want unchanged", changed, err)
	}
	foreign.FlushRuleset()
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	expectSignal("flush ruleset")

	// After Remove, the table's absence is what we want.
	if _, err := tb.Apply(twoUplinks); err != nil {
		t.Fatal(err)
	}
	if err := tb.Remove(); err != nil {
		t.Fatal(err)
	}
	// A foreign edit that would be reported if the table were wanted.
	foreign.AddTable(table())
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	foreign.DelTable(table())
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	// Sync point: a wanted table again, then a foreign flush.
	if _, err := tb.Apply(twoUplinks); err != nil {
		t.Fatal(err)
	}
	foreign.FlushRuleset()
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	expectSignal("flush ruleset after Remove and Apply")
}
