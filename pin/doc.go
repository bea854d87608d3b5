// Package pin keeps every connection on the uplink it started on (outbound)
// or arrived by (inbound) for its whole life, with conntrack marks, while
// new connections follow the balance route.
//
// It writes to the kernel: uplinkd's own nftables table (family inet,
// name "uplinkd", programmed over netlink with github.com/google/nftables,
// no nft binary), conntrack deletes by mark (github.com/ti-mo/conntrack)
// and the src_valid_mark sysctl of uplink interfaces. It touches no other
// table, and no mark bit outside its mask.
//
// The table (see build for the exact rules):
//
//   - postrouting: a connection whose mark bits are still zero, leaving
//     through an uplink's interface (oifname map), gets the uplink's mark
//     M(u) in its conntrack mark. Any such connection, not only new ones:
//     connections older than uplinkd are pinned by their next packet.
//   - prerouting: a connection arriving through an uplink (iifname map,
//     original direction) gets M(u) the same way: inbound connections and
//     port forwards are answered through the uplink they came by.
//   - prerouting, and a `type route hook output` chain for the router's
//     own traffic: the conntrack mark's bits are copied to the packet mark
//     (a `ct mark & mask` verdict map), so the routing rule `fwmark
//     M(u)/mask lookup T(u)` (package netops) routes the packet through
//     its uplink; the route chain makes the kernel re-route local packets.
//   - Only mask bits are set, by one small chain per uplink with constant
//     bit operations (`ct mark set ct mark & ~mask | M(u)`, the same for
//     meta mark). Packets that carry any mark already are neither pinned
//     nor restored: whoever marked them routes them (wg-quick matches its
//     fwmark 0xca6c exactly; adding bits would loop its packets into wg0).
//
// Table.Apply is idempotent and atomic: it compares the kernel's table
// with the desired one (chains, hooks, rule comments that spell out every
// constant, map elements) and writes nothing when they match, which makes
// a restart hitless; otherwise it deletes and re-creates the table in one
// nftables transaction. Table.Current reads the installed uplinks and
// marks back, for adoption (Assign keeps them). Table.Watch reports when
// someone else deletes or edits the table (`flush ruleset`, a firewall
// reload), so the daemon re-applies at once. Open, and the first Apply,
// fail with ErrUnsupported when the kernel has no nf_tables.
//
// Flusher deletes one uplink's connections (mark/mask, one family or both)
// in one kernel-filtered ctnetlink request, on a worker goroutine.
// SrcValidMark sets src_valid_mark=1 on uplink interfaces so that strict
// rp_filter accepts replies of pinned connections, and restores the
// previous values on a clean stop.
//
// The daemon's use, in short:
//
//	t, err := pin.Open(pin.Config{Mask: mask, Log: log}) // errors.Is(err, pin.ErrUnsupported): no pinning
//	cur, _ := t.Current()                                // adopt the marks a previous run left
//	marks, err := pin.Assign(names, mask, pin.MarksOf(cur))
//	changed, err := t.Apply(ups)                         // on every change of interface names
//	go t.Watch(ctx, reapply)                             // reapply: chan struct{} with a buffer of 1
//	f, _ := pin.NewFlusher(0, log)
//	f.Flush(unix.AF_INET, marks[name], mask, done)       // uplink down or probing in IPv4
//	var svm pin.SrcValidMark; svm.Set(ifindex, ifname)   // every uplink interface, when it appears
//	t.Remove(); svm.Restore(); f.Close(); t.Close()      // clean stop (SIGUSR2: only the Close calls)
//
// Marks: Assign derives each uplink's mark from its name (FNV hash, probing
// to the next free value inside the mask), never from its position, and
// keeps the marks found in the installed table. DefaultMask is 0xff000000.
package pin
