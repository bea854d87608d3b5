package daemon

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// changed returns a value of v's type different from v, for every type a
// configuration key has; ok is false for a type it does not know (a new
// key of a new type: teach it here).
func changed(v reflect.Value) (reflect.Value, bool) {
	n := reflect.New(v.Type()).Elem()
	switch v.Interface().(type) {
	case time.Duration:
		n.SetInt(v.Int() + int64(time.Second))
		return n, true
	case netip.Addr:
		n.Set(reflect.ValueOf(v.Interface().(netip.Addr).Next()))
		return n, true
	case netip.Prefix:
		p := netip.MustParsePrefix("198.18.9.0/24")
		if v.Interface().(netip.Prefix) == p {
			p = netip.MustParsePrefix("198.18.10.0/24")
		}
		n.Set(reflect.ValueOf(p))
		return n, true
	case []netip.Addr:
		n.Set(reflect.Append(v, reflect.ValueOf(netip.MustParseAddr("198.18.9.9"))))
		return n, true
	case []config.Target:
		n.Set(reflect.Append(v, reflect.ValueOf(config.Target{Method: config.MethodTCP, Addr: netip.MustParseAddr("198.18.9.9"), Port: 443})))
		return n, true
	case []string:
		n.Set(reflect.Append(v, reflect.ValueOf("x")))
		return n, true
	case *bool:
		b := v.IsNil() || !*v.Interface().(*bool)
		n.Set(reflect.ValueOf(&b))
		return n, true
	case [][]string:
		n.Set(reflect.Append(v, reflect.ValueOf([]string{"x"})))
		return n, true
	case []netip.Prefix:
		n.Set(reflect.Append(v, reflect.ValueOf(netip.MustParsePrefix("198.18.9.0/24"))))
		return n, true
	case *config.Range:
		r := config.Range{Start: 1, End: 2}
		if !v.IsNil() {
			r.End = v.Interface().(*config.Range).End + 1
		}
		n.Set(reflect.ValueOf(&r))
		return n, true
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt(v.Int() + 4) // slog levels are 4 apart
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		n.SetFloat(v.Float() + 1)
	case reflect.Bool:
		n.SetBool(!v.Bool())
	case reflect.String:
		n.SetString(v.String() + "x")
	default:
		return n, false
	}
	return n, true
}

// Every key of the configuration is classified for reload: changing any
// one of them alone is reported as one change, applied or "takes effect on
// restart". A key added to config.Config without an entry in globalKeys or
// uplinkKeys makes this test fail.
func TestEveryKeyClassified(t *testing.T) {
	old := parse(t, base)
	sections := reflect.ValueOf(old).Elem()
	for i := range sections.NumField() {
		sf := sections.Type().Field(i)
		if sf.Name == "Uplinks" || sf.Name == "Policies" || sf.Name == "Rules" {
			continue // below, and in TestPolicyKeysClassified
		}
		for j := range sf.Type.NumField() {
			key := sf.Name + "." + sf.Type.Field(j).Name
			t.Run(key, func(t *testing.T) {
				cfg := *old
				f := reflect.ValueOf(&cfg).Elem().Field(i).Field(j)
				v, ok := changed(f)
				if !ok {
					t.Fatalf("do not know how to change a %s", f.Type())
				}
				f.Set(v)
				got := describe(old, &cfg)
				if len(got) != 1 {
					t.Fatalf("a change of %s is reported as %q: classify it in globalKeys", key, got)
				}
			})
		}
	}
	ut := reflect.TypeFor[config.Uplink]()
	for j := range ut.NumField() {
		key := "Uplink." + ut.Field(j).Name
		t.Run(key, func(t *testing.T) {
			cfg := *old
			cfg.Uplinks = append([]config.Uplink(nil), old.Uplinks...)
			f := reflect.ValueOf(&cfg.Uplinks[1]).Elem().Field(j)
			v, ok := changed(f)
			if !ok {
				t.Fatalf("do not know how to change a %s", f.Type())
			}
			f.Set(v)
			got := describe(old, &cfg)
			if ut.Field(j).Name == "Name" {
				// A renamed uplink is another uplink.
				if len(got) != 2 || !strings.HasSuffix(got[0], "added") || !strings.HasSuffix(got[1], "removed") {
					t.Fatalf("a renamed uplink is reported as %q", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("a change of %s is reported as %q: classify it in uplinkKeys", key, got)
			}
		})
	}
}

// The keys read only at start are reported as such; those the reconcile
// follows are not.
func TestRestartKeysReported(t *testing.T) {
	old := parse(t, base)
	for _, tt := range []struct {
		line, want string
	}{
		{`balancer = "multipath"`, "routing.balancer: auto -> multipath (takes effect on restart)"},
		{`idle_timer = "30s"`, "routing.idle_timer: 2m0s -> 30s"},
		{`unbalanced_timer = "5m"`, "routing.unbalanced_timer: 10s -> 5m0s"},
		{`nexthop_id_base = 3000`, "routing.nexthop_id_base: 2010000000 -> 3000"},
		{`flush_conntrack = false`, "routing.flush_conntrack: true -> false"},
		{`mark_mask = 0xff00`, "routing.mark_mask: 0xff000000 -> 0xff00 (takes effect on restart)"},
		{`state_dir = "/var/lib/uplinkd"`, "routing.state_dir: /run/uplinkd -> /var/lib/uplinkd (takes effect on restart)"},
	} {
		cfg := parse(t, strings.Replace(base, "[routing]\n", "[routing]\n"+tt.line+"\n", 1))
		if got := describe(old, cfg); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: reported %q, want %q", tt.line, got, tt.want)
		}
	}
}

// A route_protocol change whose cleanup of the old protocol fails does not
// switch (which would orphan the old routes): the old protocol stays in
// force and the reload says so.
func TestRouteProtocolKeptWhenCleanupFails(t *testing.T) {
	d := testDaemon(t)
	k := &fakeKernel{
		routes: []netlink.Route{{
			Family: netlink.FAMILY_V4, Table: 100, Protocol: 201,
			Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("198.51.100.1").To4(), LinkIndex: 3,
		}},
		failDel: unix.EPERM,
	}
	rec := &netops.Reconciler{K: k, Protocol: 201}
	d.rec = reconciler{rec}
	cfg := parse(t, "\n[routing]\nroute_protocol = 202\nlan_interfaces = [\"eth0\"]\n"+testUplinks)
	changes := d.apply(cfg)
	if rec.Protocol != 201 || d.cfg.Routing.RouteProtocol != 201 {
		t.Fatalf("switched to protocol %d (configuration in force: %d) although the old routes are still there", rec.Protocol, d.cfg.Routing.RouteProtocol)
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "route_protocol: 201 -> 202 NOT applied") {
		t.Fatalf("changes %q", changes)
	}

	// Once the removal works, the reload switches.
	k.failDel = nil
	changes = d.apply(cfg)
	if rec.Protocol != 202 || len(changes) != 1 || changes[0] != "routing.route_protocol: 201 -> 202" {
		t.Fatalf("protocol %d, changes %q", rec.Protocol, changes)
	}
}

// Every key of a [[policy]] and a [[rule]] is classified: changing one
// alone is reported as one change.
func TestPolicyKeysClassified(t *testing.T) {
	old := parse(t, base+policyDoc)
	pt := reflect.TypeFor[config.Policy]()
	for j := range pt.NumField() {
		name := pt.Field(j).Name
		t.Run("Policy."+name, func(t *testing.T) {
			cfg := *old
			cfg.Policies = append([]config.Policy(nil), old.Policies...)
			f := reflect.ValueOf(&cfg.Policies[1]).Elem().Field(j)
			v, ok := changed(f)
			if !ok {
				t.Fatalf("do not know how to change a %s", f.Type())
			}
			f.Set(v)
			got := describe(old, &cfg)
			if name == "Name" {
				if len(got) != 2 || !strings.HasSuffix(got[0], "added") || !strings.HasSuffix(got[1], "removed") {
					t.Fatalf("a renamed policy is reported as %q", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("a change of Policy.%s is reported as %q: classify it in policyKeys", name, got)
			}
		})
	}
	rt := reflect.TypeFor[config.Rule]()
	for j := range rt.NumField() {
		name := rt.Field(j).Name
		t.Run("Rule."+name, func(t *testing.T) {
			cfg := *old
			cfg.Rules = append([]config.Rule(nil), old.Rules...)
			f := reflect.ValueOf(&cfg.Rules[0]).Elem().Field(j)
			v, ok := changed(f)
			if !ok {
				t.Fatalf("do not know how to change a %s", f.Type())
			}
			f.Set(v)
			got := describe(old, &cfg)
			want := 1
			if name == "Line" {
				want = 0 // not a key: where the rule is in the file
			}
			if len(got) != want {
				t.Fatalf("a change of Rule.%s is reported as %q: classify it in ruleKeys", name, got)
			}
		})
	}
}
