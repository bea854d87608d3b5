package netops

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Resilient group bucket attributes (include/uapi/linux/nexthop.h).
const (
	nhaResBucket     = 13 // NHA_RES_BUCKET: nested, one bucket
	nhaResBucketNHID = 3  // NHA_RES_BUCKET_NH_ID, u32: the member owning it
)

// BucketCounts returns how many buckets of resilient group id each member
// owns now, as the kernel has them (RTM_GETNEXTHOPBUCKET, filtered by the
// kernel to the group): the real split of new flows, which lags the
// weights while busy buckets wait to move.
func (c *NexthopConn) BucketCounts(id uint32) (map[uint32]int, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NHA_ID, id)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.request(unix.RTM_GETNEXTHOPBUCKET, netlink.Dump, append(nexthopHeader(0, 0, 0), attrs...))
	if err != nil {
		return nil, fmt.Errorf("list buckets of nexthop group %d: %w", id, err)
	}
	out := make(map[uint32]int)
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEXTHOPBUCKET {
			continue
		}
		member, err := parseBucket(m.Data)
		if err != nil {
			return nil, fmt.Errorf("decode bucket of nexthop group %d: %w", id, err)
		}
		out[member]++
	}
	return out, nil
}

// parseBucket returns the member owning the bucket of an
// RTM_NEWNEXTHOPBUCKET message.
func parseBucket(b []byte) (uint32, error) {
	if len(b) < unix.SizeofNhmsg {
		return 0, fmt.Errorf("bucket message of %d bytes", len(b))
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofNhmsg:])
	if err != nil {
		return 0, err
	}
	var member uint32
	for ad.Next() {
		if ad.Type() == nhaResBucket {
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == nhaResBucketNHID {
						member = nad.Uint32()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return 0, err
	}
	if member == 0 {
		return 0, fmt.Errorf("bucket without NHA_RES_BUCKET_NH_ID")
	}
	return member, nil
}
