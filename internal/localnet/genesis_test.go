package localnet

import (
	"strings"
	"testing"
)

func TestParseGenesisRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      `{`,
		"unknown field": `{"balances":{},"extra":1}`,
		"bad address":   `{"balances":{"0x12":{"ETH":"1"}}}`,
		"negative":      `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"-1"}}}`,
		"too precise":   `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"0.0000001"}}}`,
		"overflow":      `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"9223372036854.775808"}}}`,
		"empty token":   `{"balances":{"0x00000000000000000000000000000000000000aa":{"":"1"}}}`,
		"sum overflow": `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"9223372036854"},
			"0x00000000000000000000000000000000000000AA":{"ETH":"9223372036854"}}}`,
	} {
		if _, err := parseGenesis([]byte(in)); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

func TestGenesisRoundTrip(t *testing.T) {
	g, err := defaultGenesis(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"`+TutorialUser1Address+`": {`) || !strings.Contains(string(b), `"USDT": 1000`) {
		t.Fatalf("genesis text:\n%s", b)
	}
	back, err := parseGenesis(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(g) || back[TutorialUser2Address]["ETH"] != TutorialUser2ETH {
		t.Fatalf("round trip: %v", back)
	}
}

// FuzzParseGenesis: any input either fails cleanly or yields balances that
// encode and parse back to the same thing.
func FuzzParseGenesis(f *testing.F) {
	f.Add([]byte(`{"balances":{"0xc66F8Fba940064B5bA8d437d6fF829E60134230E":{"USDT":"1000"}}}`))
	f.Add([]byte(`{"balances":{"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d":{"ETH":5.5}}}`))
	f.Add([]byte(`{"balances":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGenesis(b)
		if err != nil {
			return
		}
		enc, err := g.encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseGenesis(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		enc2, _ := back.encode()
		if string(enc) != string(enc2) {
			t.Fatalf("not stable:\n%s\n%s", enc, enc2)
		}
	})
}
