package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// TestFlowsLoopback runs `labtool flows` against a sink on the loopback
// address (no namespaces needed) and reads its report.
func TestFlowsLoopback(t *testing.T) {
	var udp *net.UDPConn
	var tcp net.Listener
	for range 20 { // one port for both protocols
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.Addr().(*net.TCPAddr).Port})
		if err == nil {
			udp, tcp = u, l
			break
		}
		l.Close()
	}
	if udp == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	sink := lab.ServeFlowSink(udp, tcp)
	defer sink.Close()
	port := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
	report := filepath.Join(t.TempDir(), "flows.json")
	err := runFlows(context.Background(), []string{
		"--to", "127.0.0.1:" + port, "--from", "127.0.0.1", "--tcp", "2", "--udp", "2",
		"--interval", "10ms", "--duration", "500ms", "--uplinks", "127.0.0.1=lo", "--report", report,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var snap lab.FlowSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Flows) != 4 {
		t.Fatalf("%d flows in the report, want 4", len(snap.Flows))
	}
	for _, f := range snap.Flows {
		if f.Uplink != "lo" || f.Echoed == 0 || len(f.Changes) != 1 || f.Resets != 0 || f.Hung() {
			t.Errorf("flow %+v", f)
		}
		if f.MaxGap > 5*time.Second {
			t.Errorf("flow %d: gap %v", f.Flow, f.MaxGap)
		}
	}
	seen := sink.Sources()
	if len(seen["tcp"]) != 2 || len(seen["udp"]) != 2 {
		t.Fatalf("sink saw %v", seen)
	}
}
