package ispemu

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Mode is how an ISP treats echo requests: it drops a Loss fraction of
// them and answers the others after Delay ± Jitter (uniformly spread).
type Mode struct {
	Loss   float64 // 0 to 1
	Delay  time.Duration
	Jitter time.Duration
	// Captive: the HTTP server (http.go) redirects every request to a
	// login page, as a captive portal does, while echoes are answered.
	Captive bool
}

// Presets by name.
var presets = map[string]Mode{
	"healthy":   {},
	"lossy":     {Loss: 0.10},
	"slow":      {Delay: 350 * time.Millisecond, Jitter: 30 * time.Millisecond},
	"blackhole": {Loss: 1},
	// A link saturated by traffic: bufferbloat has raised the RTT from
	// tens of milliseconds to 400ms, and the full queue drops 2%.
	"saturated": {Loss: 0.02, Delay: 400 * time.Millisecond, Jitter: 10 * time.Millisecond},
	"captive":   {Captive: true},
}

// ParseMode parses a mode: an optional preset name followed by settings
// that override it, "loss=40%" (or "loss=0.4"), "delay=300ms",
// "jitter=20ms". With no preset, settings apply to healthy.
func ParseMode(fields []string) (Mode, error) {
	var m Mode
	if len(fields) > 0 && !strings.Contains(fields[0], "=") {
		p, ok := presets[fields[0]]
		if !ok {
			return Mode{}, fmt.Errorf("unknown mode %q: want healthy, lossy, slow, saturated, captive, blackhole or key=value settings", fields[0])
		}
		m, fields = p, fields[1:]
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Mode{}, fmt.Errorf("setting %q: want key=value", f)
		}
		var err error
		switch k {
		case "loss":
			m.Loss, err = parseLoss(v)
		case "delay":
			m.Delay, err = parseDuration(v)
		case "jitter":
			m.Jitter, err = parseDuration(v)
		case "captive":
			m.Captive, err = strconv.ParseBool(v)
		default:
			err = fmt.Errorf("unknown setting (want loss, delay, jitter or captive)")
		}
		if err != nil {
			return Mode{}, fmt.Errorf("setting %q: %w", f, err)
		}
	}
	return m, nil
}

func parseLoss(v string) (float64, error) {
	pct := strings.HasSuffix(v, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil {
		return 0, err
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 1 {
		return 0, fmt.Errorf("loss %v is not between 0 and 100%%", v)
	}
	return f, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %v", d)
	}
	return d, err
}

// String renders m so that ParseMode reads it back.
func (m Mode) String() string {
	s := fmt.Sprintf("loss=%s%% delay=%v jitter=%v", strconv.FormatFloat(100*m.Loss, 'f', -1, 64), m.Delay, m.Jitter)
	if m.Captive {
		s += " captive=true"
	}
	return s
}

// fate decides what happens to one request: dropped, or answered after
// the returned delay. r supplies the randomness.
func (m Mode) fate(r *rand.Rand) (time.Duration, bool) {
	if m.Loss > 0 && r.Float64() < m.Loss {
		return 0, false
	}
	d := m.Delay
	if m.Jitter > 0 {
		d += time.Duration(r.Int64N(int64(2*m.Jitter)+1)) - m.Jitter
	}
	return max(d, 0), true
}
