package pin

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine pin starts (Watch's subscription, the Flusher's worker)
// must be gone when its owner returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
