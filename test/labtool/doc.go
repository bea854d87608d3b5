// Command labtool holds the small programs that uplinkd's network lab
// (package github.com/uplinkd/uplinkd/test/lab) runs inside its namespaces
// with `ip netns exec`:
//
//	labtool udpsink --listen 198.18.0.1:9000 --report FILE
//	labtool udpsend --to 198.18.0.1:9000 --sport 40000 --interval 1ms --duration 10s
//	labtool ispemu --control /tmp/ispemu.sock [--mode isp2=lossy]
//	labtool ispctl --control /tmp/ispemu.sock set isp2 loss=40% delay=50ms
//	labtool flowsink --listen 198.18.0.1:9100
//	labtool flows --to 198.18.0.1:9100 --from 192.0.2.10,192.0.2.11 --tcp 128 --udp 128 --report FILE --every 1s
//
// udpsend sends datagrams that carry a sequence number and their send time
// from a fixed source port; udpsink receives them and, on SIGTERM or SIGINT,
// writes a JSON lab.SinkReport per sender: datagrams received, lost
// (sequence gaps), and the longest silence between two arrivals, which is
// what a failover costs a flow. udpsend prints a lab.SendReport when it
// stops. ispemu is the ISP emulator of package ispemu, run in the Internet
// namespace, and ispctl changes its modes at run time. flows and flowsink
// are lab.FlowClient and lab.FlowSink (lab.StartFlows runs them inside a
// test process): long-lived TCP connections and UDP flows whose echoes
// tell which uplink each one takes over time, its longest gap, lost UDP
// sequence numbers, TCP resets and hangs.
package main
