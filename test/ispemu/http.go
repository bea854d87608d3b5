package ispemu

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// PortalURL is where a captive ISP redirects every HTTP request.
const PortalURL = "http://portal.example/login"

// ServeHTTP answers HTTP requests the way the Internet looks through the
// ISP they came through (the interface the route back to the client
// leaves by, named after the ISP): 204 No Content, the answer of the
// "generate_204" URLs that detect captive portals, or, when the ISP's mode
// is captive, a redirect to PortalURL.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iface := ""
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		iface = routeDev(ap.Addr().Unmap())
	}
	e.mu.Lock()
	captive := e.modes[iface].Captive
	e.mu.Unlock()
	if captive {
		http.Redirect(w, r, PortalURL, http.StatusFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// routeDev is the interface the route to client leaves by: the one its
// requests come in on, routing being symmetric in the lab.
func routeDev(client netip.Addr) string {
	routes, err := netlink.RouteGet(net.IP(client.AsSlice()))
	if err != nil || len(routes) == 0 {
		return ""
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return ""
	}
	return l.Attrs().Name
}
