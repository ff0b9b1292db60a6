package obapi

import (
	"errors"
	"fmt"
)

// TokenBytesMax bounds a token name everywhere a replica reads one (it is
// the matcher's bound on names: see internal/matcher.NameBytesMax).
const TokenBytesMax = 128

// CheckTokenName is the one rule for a token name, shared by the replica
// (which refuses anything else with 400) and by the services in front of
// it, so they refuse the same names with the same status: non-empty, at
// most TokenBytesMax bytes, printable (no space, control character, DEL or
// invalid UTF-8) and without '/' (the market separator).
func CheckTokenName(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	if len(s) > TokenBytesMax {
		return fmt.Errorf("longer than %d bytes", TokenBytesMax)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\uFFFD' || r == '/' {
			return fmt.Errorf("invalid token name %q (printable, no space or '/', at most %d bytes)", s, TokenBytesMax)
		}
	}
	return nil
}
