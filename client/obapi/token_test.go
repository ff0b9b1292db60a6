package obapi

import (
	"strings"
	"testing"
)

func TestCheckTokenName(t *testing.T) {
	for _, ok := range []string{"ETH", "USDT", "wETH.e", strings.Repeat("X", TokenBytesMax), "€UR"} {
		if err := CheckTokenName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ETH/USDT", "ETH X", "ETH\t", "\x00", "\x7f", "\xff", "\uFFFD", strings.Repeat("X", TokenBytesMax+1)} {
		if err := CheckTokenName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
