package traffic

import "unsafe"

// unsafePointer views a control message's data as the C structure the
// kernel wrote there.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
