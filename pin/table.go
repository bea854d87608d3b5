package pin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by the errors of Open and Apply when the
// kernel lacks nf_tables (or a part of it the table needs: the inet
// family, the route chain type, ct or meta expressions). The daemon then
// falls back to routing without pinning and says so.
var ErrUnsupported = errors.New("nf_tables is not available")

// Config says where the table lives and which mark bits it owns.
type Config struct {
	NetNS int    // network namespace file descriptor; 0: the caller's
	Mask  uint32 // uplinkd's mark bits; 0 means DefaultMask
	Log   *slog.Logger
}

// Table is uplinkd's nftables table. Apply and Remove are meant for one
// goroutine (the daemon's loop); Watch runs in another and may run at the
// same time.
type Table struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // serialises the request connection and guards the fields below
	conn    *nftables.Conn
	applied bool  // Apply has succeeded once: later errors are not ErrUnsupported guesses
	want    *view // the view of the last table Apply wrote or found; nil: none wanted
	gen     int   // counts changes of want

	// verified says the kernel held want when last checked and Watch
	// (watching > 0 subscriptions) has seen no change since: Apply of the
	// same table then skips reading the kernel.
	verified bool
	watching int
	// wantFor are the uplinks want was built from: an Apply of the same
	// uplinks, verified, need not build the ruleset again (a reconcile of
	// 256 uplinks spent a third of its time there).
	wantFor []Uplink

	// What Watch last reported: the same foreign state is reported once
	// per wanted table, however many events show it.
	reportedGen  int
	reportedView *view
}

// Open connects to nf_tables in cfg's network namespace and checks that
// it is there. It does not touch the table: Current reads what a previous
// run left, Apply replaces it.
func Open(cfg Config) (*Table, error) {
	if cfg.Mask == 0 {
		cfg.Mask = DefaultMask
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every message of Apply's batch is acknowledged, and the kernel queues
	// all the acknowledgements before the first is read: at the default
	// buffer size a table for 64 uplinks overran it (ENOBUFS) and could
	// never be written. Room for a table at the largest mask's capacity.
	c, err := dialNFT(cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("open nftables netlink socket: %w", err), openErr)
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		_ = c.CloseLasting()
		return nil, classify(fmt.Errorf("list nftables tables: %w", err), openErr)
	}
	return &Table{cfg: cfg, log: log, conn: c}, nil
}

// dialNFT opens a lasting connection to nf_tables in cfg's namespace.
func dialNFT(cfg Config) (*nftables.Conn, error) {
	return nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(cfg.NetNS),
		nftables.WithSockOptions(func(c *netlink.Conn) error {
			raw, err := c.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := raw.Control(func(fd uintptr) {
				// As root, SO_RCVBUFFORCE gets past net.core.rmem_max.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ackBuffer)
			}); err != nil {
				return err
			}
			if serr != nil {
				return c.SetReadBuffer(ackBuffer)
			}
			return nil
		}))
}

// redialLocked replaces the request connection after a failed
// transaction: a failure (ENOBUFS above all) can leave answers unread or
// lost, and the next request on the same socket would read them, or wait
// forever for the lost ones.
func (t *Table) redialLocked() {
	c, err := dialNFT(t.cfg)
	if err != nil {
		t.log.Warn("reopen the nftables connection failed; keeping the old one", "err", err)
		return
	}
	_ = t.conn.CloseLasting()
	t.conn = c
}

// Mask is the table's mark mask.
func (t *Table) Mask() uint32 { return t.cfg.Mask }

// Apply makes the kernel's table hold exactly what ups need. When it does
// already, Apply writes nothing and returns changed false: a restart that
// finds its predecessor's table keeps it, and the pins in it, untouched.
// Otherwise the old table is deleted and the new one written in one
// nftables transaction, so no packet ever sees half a table. While Watch
// runs and has seen no change, an Apply of the same uplinks as the last
// one does not even read the kernel.
func (t *Table) Apply(ups []Uplink) (changed bool, err error) {
	t.mu.Lock()
	fresh := t.verified && t.watching > 0 && t.want != nil && slices.Equal(t.wantFor, ups)
	t.mu.Unlock()
	if fresh {
		// The uplinks it was built from, validated then: the common
		// reconcile, which need not build three maps of 256 uplinks.
		return false, nil
	}
	if err := validate(t.cfg.Mask, ups); err != nil {
		return false, fmt.Errorf("pin table: %w", err)
	}
	rs := build(t.cfg.Mask, ups)
	want := rs.view()

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.verified && t.watching > 0 && t.want != nil && reflect.DeepEqual(*t.want, want) {
		t.wantFor = slices.Clone(ups)
		return false, nil
	}
	cur, err := t.readLocked(want.chainNames())
	if err != nil {
		t.log.Debug("reading the pin table failed; replacing it", "err", err)
		t.redialLocked()
	}
	if err == nil && cur != nil && reflect.DeepEqual(*cur, want) {
		t.setWant(&want, ups)
		t.applied, t.verified = true, true
		return false, nil
	}
	if err := t.writeLocked(rs, cur != nil || err != nil); err != nil {
		t.redialLocked()
		stage := laterErr
		if !t.applied {
			stage = firstApplyErr
		}
		return false, classify(fmt.Errorf("write nftables table inet %s: %w", TableName, err), stage)
	}
	t.setWant(&want, ups)
	t.applied, t.verified = true, true
	return true, nil
}

func (t *Table) setWant(v *view, ups []Uplink) {
	t.want, t.wantFor = v, slices.Clone(ups)
	t.gen++
}

// Current returns the uplinks of the installed table, sorted by name: each
// uplink's mark, and its interface while it has one. It returns nil when
// there is no table.
func (t *Table) Current() ([]Uplink, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, err := t.readLocked(nil)
	if err != nil {
		return nil, fmt.Errorf("read nftables table inet %s: %w", TableName, err)
	}
	if v == nil {
		return nil, nil
	}
	return v.uplinks(), nil
}

// Remove deletes the table (clean stop): nothing of it is left, and Watch
// stops reporting its absence.
func (t *Table) Remove() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setWant(nil, nil)
	t.verified = false
	t.conn.DelTable(table())
	if err := t.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		t.redialLocked()
		return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// Close closes the netlink socket; the table stays (see Remove).
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn.CloseLasting()
}

func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// writeLocked replaces the table by rs in one batch; replace says a table
// (perhaps) exists and must be deleted first.
func (t *Table) writeLocked(rs ruleset, replace bool) error {
	c := t.conn
	tbl := table()
	if replace {
		c.AddTable(tbl) // so that the delete cannot fail on a table removed meanwhile
		c.DelTable(tbl)
	}
	c.AddTable(tbl)
	addChain := func(cs chainSpec, setIDs map[string]uint32) {
		ch := &nftables.Chain{Name: cs.name, Table: tbl}
		if cs.hook != nil {
			ch.Hooknum = cs.hook
			ch.Priority = &cs.prio
			ch.Type = cs.ctype
			accept := nftables.ChainPolicyAccept
			ch.Policy = &accept
		}
		c.AddChain(ch)
		for _, r := range cs.rules {
			for _, e := range r.exprs {
				if l, ok := e.(*expr.Lookup); ok {
					l.SetID = setIDs[l.SetName]
				}
			}
			c.AddRule(&nftables.Rule{
				Table: tbl, Chain: ch, Exprs: r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment),
			})
		}
	}
	for _, cs := range rs.chains {
		addChain(cs, nil)
	}
	setIDs := map[string]uint32{}
	for _, m := range rs.maps {
		s := &nftables.Set{Table: tbl, Name: m.name, IsMap: true, KeyType: m.key, DataType: nftables.TypeVerdict}
		if m.key == nftables.TypeMark {
			s.KeyByteOrder = binaryutil.NativeEndian
		}
		var elems []nftables.SetElement
		for _, e := range m.elems {
			elems = append(elems, nftables.SetElement{Key: e.key, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.chain}})
		}
		if err := c.AddSet(s, elems); err != nil {
			return fmt.Errorf("map %s: %w", m.name, err)
		}
		setIDs[m.name] = s.ID
	}
	for _, cs := range rs.base {
		addChain(cs, setIDs)
	}
	return c.Flush()
}

// readLocked returns the view of the installed table, nil when there is
// none. It reads only uplinkd's table, never a dump of every table's
// chains: the chains named in chains (those of the wanted table; none for
// Current, which needs only the maps), and the table's object count, which
// shows chains added by someone else.
func (t *Table) readLocked(chains []string) (*view, error) {
	c := t.conn
	tbl, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get table: %w", err)
	}
	v := view{Chains: map[string]chainView{}, Maps: map[string]map[string]string{}}
	readChain := func(ch *nftables.Chain) error {
		ch.Table = tbl
		var prio nftables.ChainPriority
		if ch.Priority != nil {
			prio = *ch.Priority
		}
		cv := chainView{Hook: hookString(ch.Hooknum, prio, ch.Type)}
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			return fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			cv.Rules = append(cv.Rules, comment)
		}
		v.Chains[ch.Name] = cv
		return nil
	}
	for _, name := range chains {
		ch, err := c.ListChain(tbl, name)
		if err != nil {
			// google/nftables hides the errno: a chain that cannot be
			// read counts as missing, and Apply's write reports any
			// real failure.
			t.log.Debug("pin table chain not readable", "chain", name, "err", err)
			continue
		}
		if err := readChain(ch); err != nil {
			return nil, err
		}
	}
	sets, err := c.GetSets(tbl)
	if err != nil {
		return nil, fmt.Errorf("list maps: %w", err)
	}
	for _, s := range sets {
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list elements of map %s: %w", s.Name, err)
		}
		m := map[string]string{}
		for _, e := range elems {
			m[fmt.Sprintf("%x", e.Key)] = jumpTarget(e.Val)
		}
		v.Maps[s.Name] = m
	}
	// The table counts its chains and maps (and objects and flowtables):
	// anything more than what was read was added by someone else, or is
	// a deleted chain the kernel has not freed yet. Only then list every
	// inet chain, to see which.
	if chains != nil && tbl.Use != uint32(len(v.Chains)+len(sets)) {
		all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("list chains: %w", err)
		}
		for _, ch := range all {
			if ch.Table == nil || ch.Table.Name != TableName {
				continue
			}
			if _, ok := v.Chains[ch.Name]; ok {
				continue
			}
			if err := readChain(ch); err != nil {
				return nil, err
			}
		}
	}
	return &v, nil
}

// jumpTarget decodes a verdict map element's data as google/nftables
// returns it (the nested NFTA_VERDICT_* attributes): the chain of a jump,
// or a description of any other verdict, which then compares unequal.
func jumpTarget(val []byte) string {
	ad, err := netlink.NewAttributeDecoder(val)
	if err != nil {
		return fmt.Sprintf("undecodable verdict %x", val)
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = int32(ad.Uint32())
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || code != int32(expr.VerdictJump) {
		return fmt.Sprintf("verdict %d %s", code, chain)
	}
	return chain
}

// Where an error happened, for classify.
const (
	openErr       = iota // Open: the first request to nf_tables
	firstApplyErr        // the first write of the table
	laterErr             // anything after a write succeeded
)

// classify wraps err with ErrUnsupported when it says that the kernel
// lacks nf_tables or a part of the table needs. EINVAL means a missing
// nf_tables subsystem only in answer to Open's first request, and ENOENT
// (a missing expression or chain type module) only before any write
// succeeded.
func classify(err error, stage int) error {
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), // no nfnetlink at all
		errors.Is(err, unix.EOPNOTSUPP),
		errors.Is(err, unix.EAFNOSUPPORT), // no inet family
		errors.Is(err, unix.EINVAL) && stage == openErr,
		errors.Is(err, unix.ENOENT) && stage <= firstApplyErr:
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// ackBuffer is the receive buffer of the table's socket (see Open).
const ackBuffer = 8 << 20
