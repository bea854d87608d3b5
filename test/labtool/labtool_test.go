package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/uplinkd/uplinkd/test/lab"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWire(t *testing.T) {
	b := make([]byte, 64)
	want := datagram{seq: 1<<40 + 7, sentNS: 1_700_000_000_123_456_789}
	want.encode(b)
	got, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("decode(encode(%+v)) = %+v", want, got)
	}
	for _, bad := range [][]byte{nil, b[:headerLen-1], append([]byte("XLD1"), b[4:]...)} {
		if _, err := decode(bad); !errors.Is(err, errNotOurs) {
			t.Errorf("decode(%q) error = %v, want errNotOurs", bad, err)
		}
	}
}

func TestSinkStats(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type arrival struct {
		from string
		seq  uint64
		ms   int // arrival time; sent 1 ms earlier
	}
	tests := []struct {
		name     string
		arrivals []arrival
		end      int
		want     lab.SinkReport
	}{
		{
			name: "empty",
			want: lab.SinkReport{Flows: map[string]lab.FlowReport{}},
		},
		{
			name: "failover gap",
			// 0..2 every ms, 3..5 lost while the path moves, 6.. resumes.
			arrivals: []arrival{{"a", 0, 0}, {"a", 1, 1}, {"a", 2, 2}, {"a", 6, 40}, {"a", 7, 41}},
			end:      51,
			want: lab.SinkReport{
				Received: 5, Lost: 3, MaxGapMS: 38, MaxGapSeq: 6, MaxGapFlow: "a",
				Flows: map[string]lab.FlowReport{"a": {
					Received: 5, Lost: 3, FirstSeq: 0, LastSeq: 7,
					MaxGapMS: 38, MaxGapSeq: 6, TrailingGapMS: 10, MaxLatencyMS: 1,
				}},
			},
		},
		{
			name:     "first datagrams lost, duplicate and reordering",
			arrivals: []arrival{{"a", 2, 0}, {"a", 4, 1}, {"a", 3, 2}, {"a", 3, 3}, {"a", 5, 4}},
			end:      4,
			want: lab.SinkReport{
				Received: 4, Lost: 2, Duplicates: 1, Reordered: 1, MaxGapMS: 2, MaxGapSeq: 5, MaxGapFlow: "a",
				Flows: map[string]lab.FlowReport{"a": {
					// A duplicate is not progress: the gap runs from 2 to 4 ms.
					Received: 4, Lost: 2, Duplicates: 1, Reordered: 1, FirstSeq: 2, LastSeq: 5,
					MaxGapMS: 2, MaxGapSeq: 5, MaxLatencyMS: 1,
				}},
			},
		},
		{
			name:     "two flows",
			arrivals: []arrival{{"a", 0, 0}, {"b", 0, 1}, {"a", 1, 5}, {"b", 1, 2}},
			end:      5,
			want: lab.SinkReport{
				Received: 4, MaxGapMS: 5, MaxGapSeq: 1, MaxGapFlow: "a",
				Flows: map[string]lab.FlowReport{
					"a": {Received: 2, LastSeq: 1, MaxGapMS: 5, MaxGapSeq: 1, MaxLatencyMS: 1},
					"b": {Received: 2, LastSeq: 1, MaxGapMS: 1, MaxGapSeq: 1, TrailingGapMS: 3, MaxLatencyMS: 1},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sinkStats
			for _, a := range tt.arrivals {
				s.add(a.from, datagram{seq: a.seq, sentNS: at(a.ms - 1).UnixNano()}, at(a.ms))
			}
			if diff := cmp.Diff(tt.want, s.report(at(tt.end))); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	flagOutput = io.Discard
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(context.Context, []string) error
		args []string
	}{
		{"sink without --listen", runSink, nil},
		{"sink bad address", runSink, []string{"--listen", "198.18.0.1"}},
		{"sink extra argument", runSink, []string{"--listen", "198.18.0.1:9000", "x"}},
		{"send without --to", runSend, nil},
		{"send bad --sport", runSend, []string{"--to", "198.18.0.1:9", "--sport", "70000"}},
		{"send bad --interval", runSend, []string{"--to", "198.18.0.1:9", "--interval", "0s"}},
		{"send tiny --size", runSend, []string{"--to", "198.18.0.1:9", "--size", "10"}},
		{"send bad --from", runSend, []string{"--to", "198.18.0.1:9", "--from", "x"}},
		{"unknown flag", runSend, []string{"--bogus"}},
	} {
		if err := tc.run(ctx, tc.args); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := runSend(ctx, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestWriteReport(t *testing.T) {
	file := filepath.Join(t.TempDir(), "r.json")
	want := lab.SendReport{Sent: 3, Errors: 1, FirstError: "boom", Source: "192.0.2.10:40000"}
	if err := writeReport(file, want); err != nil {
		t.Fatal(err)
	}
	got, err := lab.ReadSendReport(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
