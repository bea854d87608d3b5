// Package ispemu emulates the quality of each ISP's upstream for uplinkd's
// lab: a user-space ICMP echo responder with configurable loss, delay and
// jitter, switchable at run time. The kernels uplinkd is tested on lack tc
// netem, so this is how the lab makes an uplink lossy or slow.
//
// The emulator runs in the lab's Internet namespace, which owns the probe
// targets and is reached from the router through either ISP. It switches the
// kernel's own echo replies off in that namespace
// (net.ipv4.icmp_echo_ignore_all=1, restored when it stops; it refuses to
// run outside a namespace named by `ip netns add`, so never in the host's)
// and answers every echo request
// itself, according to the mode of the interface the request came in on.
// The Internet namespace's interfaces are named after the ISPs ("isp1",
// "isp2"), so a mode set for "isp2" is the quality of ISP2's upstream, for
// every target behind it. Only echo requests are affected; other traffic
// passes untouched.
//
// A Mode is a loss ratio, a delay and a jitter; the presets are healthy,
// lossy (10% loss), slow (350ms ± 30ms), saturated (400ms ± 10ms and 2%
// loss: bufferbloat on a loaded DSL or LTE link) and blackhole (100% loss).
// A mode applies to requests arriving after it is set, so setting
// "delay=20ms" and then "saturated" is an RTT step from 20ms to 400ms. Modes are
// set over a unix socket with a line protocol that Client speaks (and that
// `labtool ispctl` and socat can speak too):
//
//	set isp2 loss=40%            -> ok isp2 loss=40% delay=0s jitter=0s
//	set isp2 slow jitter=50ms    -> ok isp2 loss=0% delay=350ms jitter=50ms
//	stats                        -> ok {"isp2":{"mode":"...","requests":12,...}}
//
// The counters let tests measure the probe traffic per ISP, and its peak:
// the most requests within any one second.
package ispemu
