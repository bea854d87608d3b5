// Package traffic sends and receives the bench's UDP test traffic: LAN
// flows from the lab's host through the router, a control flow from the
// router's healthy uplink address, and single-datagram "new connections".
// The sink in the Internet namespace records every arrival with the
// interface it came in on, which names the ISP that carried it.
package traffic
