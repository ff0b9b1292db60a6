package localnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadGenesisRejects(t *testing.T) {
	dir := t.TempDir()
	for name, in := range map[string]string{
		"not json":    `{`,
		"bad address": `{"balances":{"0x12":{"ETH":"1"}}}`,
		"negative":    `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"-1"}}}`,
		"too precise": `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"0.0000001"}}}`,
		"empty token": `{"balances":{"0x00000000000000000000000000000000000000aa":{"":"1"}}}`,
		"sum overflow": `{"balances":{"0x00000000000000000000000000000000000000aa":{"ETH":"9223372036854"},
			"0x00000000000000000000000000000000000000AA":{"ETH":"9223372036854"}}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		os.WriteFile(p, []byte(in), 0o644)
		if _, err := readGenesis(p); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

// What localnet writes (the list layout the docs show) is what the
// replica's parser reads back, and the older map layout the replica also
// accepts works as an extra file.
func TestGenesisRoundTripThroughReplicaParser(t *testing.T) {
	g, err := defaultGenesis(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"address": "`+TutorialUser1Address+`",
      "token": "USDT",
      "amount": "1000"`) {
		t.Fatalf("genesis text:\n%s", b)
	}
	p := filepath.Join(t.TempDir(), "g.json")
	os.WriteFile(p, b, 0o644)
	back, err := readGenesis(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(g) || back[TutorialUser2Address]["ETH"] != TutorialUser2ETH || back[TutorialUser1Address]["USDT"] != TutorialUser1USDT {
		t.Fatalf("round trip: %v", back)
	}
	list := filepath.Join(t.TempDir(), "list.json")
	os.WriteFile(list, []byte(`{"balances":{"0x00000000000000000000000000000000000000aa":{"BTC":1.25}}}`), 0o644)
	extra, err := readGenesis(list)
	if err != nil {
		t.Fatal(err)
	}
	if extra["0x00000000000000000000000000000000000000AA"]["BTC"] != 1_250_000 {
		t.Fatalf("map layout: %v", extra)
	}
}
