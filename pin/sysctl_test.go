package pin

import (
	"testing"
)

func TestSrcValidMark(t *testing.T) {
	ns := newNS(t, "pin-svm")
	ip(t, "-n", ns.name, "link", "add", "eth1", "type", "veth", "peer", "name", "eth2")
	idx := func(name string) int {
		var i int
		ns.run(t, func() error {
			var err error
			i, err = ifindex(name)
			return err
		})
		return i
	}
	get := func(name string) int {
		var v int
		ns.run(t, func() error {
			var err error
			v, err = readSrcValidMark(name)
			return err
		})
		return v
	}
	var s SrcValidMark
	i1, i2 := idx("eth1"), idx("eth2")
	// eth2 already has 1: it must keep it after Restore.
	ns.run(t, func() error { return writeSrcValidMark("eth2", 1) })
	ns.run(t, func() error { return s.Set(i1, "eth1") })
	ns.run(t, func() error { return s.Set(i2, "eth2") })
	if get("eth1") != 1 || get("eth2") != 1 {
		t.Fatal("src_valid_mark not set")
	}
	// Renamed: the same interface, its previous value still known.
	ip(t, "-n", ns.name, "link", "set", "eth1", "name", "wan1")
	ns.run(t, func() error { return s.Set(i1, "wan1") })
	// A reset is not seen until the interface is rechecked (its value is
	// not read at every Set), then repaired.
	ns.run(t, func() error { return writeSrcValidMark("eth2", 0) })
	ns.run(t, func() error { return s.Set(i2, "eth2") })
	if get("eth2") != 0 {
		t.Fatal("Set read a value it knows")
	}
	s.Recheck(i2)
	ns.run(t, func() error { return s.Set(i2, "eth2") })
	if get("eth2") != 1 {
		t.Fatal("Set after Recheck did not repair the value")
	}
	ns.run(t, func() error { return writeSrcValidMark("eth2", 0) })
	s.RecheckAll()
	ns.run(t, func() error { return s.Set(i2, "eth2") })
	if get("eth2") != 1 {
		t.Fatal("Set after RecheckAll did not repair the value")
	}
	// A later interface.
	ip(t, "-n", ns.name, "link", "add", "eth3", "type", "veth", "peer", "name", "eth4")
	i3 := idx("eth3")
	ns.run(t, func() error { return s.Set(i3, "eth3") })
	ip(t, "-n", ns.name, "link", "del", "eth3") // gone: nothing to restore
	ns.run(t, func() error { return s.Restore() })
	if get("wan1") != 0 || get("eth2") != 1 {
		t.Fatalf("after Restore: wan1 %d (want 0), eth2 %d (want 1)", get("wan1"), get("eth2"))
	}

	var restore func() error
	ns.run(t, func() error {
		var err error
		restore, err = SetSrcValidMark("wan1")
		return err
	})
	if get("wan1") != 1 {
		t.Fatal("SetSrcValidMark did not set")
	}
	ns.run(t, restore)
	if get("wan1") != 0 {
		t.Fatal("restore did not restore")
	}
	if _, err := srcValidMarkPath("../all"); err == nil {
		t.Fatal("path escape accepted")
	}
}
