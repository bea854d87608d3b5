package lab

import (
	"encoding/json"
	"fmt"
	"os"
)

// SinkReport is what `labtool udpsink` writes when it stops. Top-level
// figures cover every flow: counts are summed and the gap is the worst
// one. For a single flow they are that flow's figures.
type SinkReport struct {
	Received   int     `json:"received"`
	Lost       int     `json:"lost"`
	Duplicates int     `json:"duplicates"`
	Reordered  int     `json:"reordered"`
	MaxGapMS   float64 `json:"max_gap_ms"`
	MaxGapSeq  uint64  `json:"max_gap_seq"`
	MaxGapFlow string  `json:"max_gap_flow,omitempty"`
	// Flows holds one report per sender, keyed by its "addr:port": the
	// sender's own address and port, or with EnableNAT the translated
	// ones.
	Flows map[string]FlowReport `json:"flows"`
}

// FlowReport describes the datagrams of one sender. Sequence numbers start
// at 0, so Lost counts the numbers from 0 up to LastSeq that never arrived;
// datagrams lost after the last arrival are invisible here (compare
// Received with the sender's SendReport.Sent, and see TrailingGapMS).
type FlowReport struct {
	Received   int    `json:"received"`
	Lost       int    `json:"lost"`
	Duplicates int    `json:"duplicates"`
	Reordered  int    `json:"reordered"` // arrivals below the highest sequence seen so far
	FirstSeq   uint64 `json:"first_seq"` // of the first arrival
	LastSeq    uint64 `json:"last_seq"`  // highest sequence received
	// MaxGapMS is the longest time between two consecutive arrivals of new
	// datagrams (duplicates do not count) and MaxGapSeq the sequence number
	// of the datagram that ended it.
	MaxGapMS  float64 `json:"max_gap_ms"`
	MaxGapSeq uint64  `json:"max_gap_seq"`
	// TrailingGapMS is the time from the last arrival to the report: a flow
	// that never recovered shows it here rather than in MaxGapMS.
	TrailingGapMS float64 `json:"trailing_gap_ms"`
	// MaxLatencyMS is the largest one-way delay (all namespaces share the
	// kernel's clock).
	MaxLatencyMS float64 `json:"max_latency_ms"`
}

// SendReport is what `labtool udpsend` prints on standard output (and
// writes to its --report file) when it stops.
type SendReport struct {
	Sent       int    `json:"sent"`
	Errors     int    `json:"errors"` // failed sends, e.g. no route
	FirstError string `json:"first_error,omitempty"`
	Source     string `json:"source"` // local "addr:port"
}

// ReadSinkReport reads a udpsink report file.
func ReadSinkReport(file string) (SinkReport, error) {
	var r SinkReport
	return r, readJSON(file, &r)
}

// ReadSendReport reads a udpsend report file.
func ReadSendReport(file string) (SendReport, error) {
	var r SendReport
	return r, readJSON(file, &r)
}

func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", file, err)
	}
	return nil
}
