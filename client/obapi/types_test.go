package obapi

import (
	"encoding/json"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func TestNumberAcceptsStringsAndNumbers(t *testing.T) {
	cases := []struct {
		in   string
		want Number
		ok   bool
	}{
		{`"1500000"`, "1500000", true},
		{`1500000`, "1500000", true},
		{`1.5`, "1.5", true},
		{`"1.5"`, "1.5", true},
		{`1e3`, "1e3", true},
		{`18446744073709551615`, "18446744073709551615", true}, // beyond float64 precision: kept as text
		{`-1`, "-1", true},                                     // the server's parser refuses it with a clear reason
		{`true`, "", false},
		{`null`, "", true}, // left alone, as encoding/json does for null
		{`{}`, "", false},
		{`[1]`, "", false},
	}
	for _, c := range cases {
		var v struct {
			N Number `json:"n"`
		}
		err := json.Unmarshal([]byte(`{"n":`+c.in+`}`), &v)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && v.N != c.want {
			t.Errorf("%s: got %q, want %q", c.in, v.N, c.want)
		}
	}
}

func TestNumberRoundTripsAsString(t *testing.T) {
	b, err := json.Marshal(OrderRequest{Quantity: Uint(1500000), Nonce: "7"})
	if err != nil {
		t.Fatal(err)
	}
	var back OrderRequest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Quantity != "1500000" || back.Nonce != "7" {
		t.Fatalf("round trip: %+v from %s", back, b)
	}
}

// The deposit digest layout is a wire contract: pin one value so a change
// is a deliberate one.
func TestDepositDigestPinned(t *testing.T) {
	d := Deposit{ChainID: 31337, App: "orderbook", Account: common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E"),
		Token: "USDT", Amount: 1_000_000_000, Nonce: 1, Expiry: 1_700_000_000}
	got := common.Hash(d.Digest()).Hex()
	const want = "0xf9654fdb72f16c46e9aa27d1978854b0e945fe01dff9923fbb031e13f6a053da"
	if got != want {
		t.Fatalf("deposit digest changed: %s", got)
	}
	d2 := d
	d2.Nonce = 2
	if d2.Digest() == d.Digest() {
		t.Fatal("nonce does not change the digest")
	}
}

func FuzzNumber(f *testing.F) {
	for _, s := range []string{`"1"`, `1.5`, `true`, `"\u0031"`, `1e400`, `-0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Number
		if err := json.Unmarshal(b, &n); err != nil {
			return
		}
		out, err := json.Marshal(n)
		if err != nil {
			t.Fatalf("marshal %q: %v", n, err)
		}
		var back Number
		if err := json.Unmarshal(out, &back); err != nil || back != n {
			t.Fatalf("round trip %q -> %s -> %q (%v)", n, out, back, err)
		}
	})
}
