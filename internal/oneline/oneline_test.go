package oneline

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"isp1":                   "isp1",
		"a\nlevel=ERROR msg=x":   `a\nlevel=ERROR msg=x`,
		"\x1b[2J":                `\x1b[2J`,
		"tab\there":              `tab\x09here`,
		"nul\x00":                `nul\x00`,
		"next line\u0085":        `next line\x85`,
		"fibre ☃":                "fibre ☃",
		"\u009b31m":              `\x9b31m`,
		"bidi\u202e":             "bidi\u202e", // a format character, not a control
		"del\x7f":                `del\x7f`,
		"\r\nfake: line":         `\x0d\nfake: line`,
		"":                       "",
		"two\n\nnewlines":        `two\n\nnewlines`,
		"plain = \"quoted\"":     "plain = \"quoted\"",
		"line sep\u2028":         "line sep\u2028",
		"\u0080first C1 control": `\x80first C1 control`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
