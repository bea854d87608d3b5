package pin

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// verdict encodes a verdict map element's data as the kernel sends it.
func verdict(t testing.TB, code int32, chain string) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Uint32(unix.NFTA_VERDICT_CODE, uint32(code))
	if chain != "" {
		ae.String(unix.NFTA_VERDICT_CHAIN, chain)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Any element data decodes to a chain or a description of what it is,
// without panicking; a jump decodes to its chain.
func FuzzJumpTarget(f *testing.F) {
	f.Add(verdict(f, int32(expr.VerdictJump), "up_isp1"))
	f.Add(verdict(f, int32(expr.VerdictAccept), ""))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := jumpTarget(b)
		if strings.HasPrefix(got, "verdict ") || strings.HasPrefix(got, "undecodable ") {
			return
		}
		// A chain name: then re-encoding it as a jump gives it back.
		if again := jumpTarget(verdict(t, int32(expr.VerdictJump), got)); again != got && got != "" {
			t.Fatalf("%x decodes to chain %q, whose jump decodes to %q", b, got, again)
		}
	})
}
