package legacy

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
)

// Expected strings in these tables were printed by CPython 3's repr(float).

func TestFormatAmountMatchesPythonRepr(t *testing.T) {
	for _, tc := range []struct {
		units uint64
		want  string
	}{
		{0, "0.0"},
		{1, "1e-06"},
		{7, "7e-06"},
		{10, "1e-05"},
		{12, "1.2e-05"},
		{15, "1.5e-05"},
		{50, "5e-05"},
		{99, "9.9e-05"},
		{100, "0.0001"},
		{121, "0.000121"},
		{123, "0.000123"},
		{500, "0.0005"},
		{1000, "0.001"},
		{10000, "0.01"},
		{100000, "0.1"},
		{123456, "0.123456"},
		{999999, "0.999999"},
		{1000000, "1.0"},
		{1000001, "1.000001"},
		{1500000, "1.5"},
		{4200000, "4.2"},
		{5000000, "5.0"},
		{5290073, "5.290073"},
		{24350589, "24.350589"},
		{200000000, "200.0"},
		{440918276, "440.918276"},
		{1953574602, "1953.574602"},
		{2000000000, "2000.0"},
		{1234567890123, "1234567.890123"},
		{100000000000000, "100000000.0"},
		{314159265358979, "314159265.358979"},
		{9007199254740992, "9007199254.740992"},
		// float64(v)/1e6 rounds twice here and lands one float off; the
		// text route does not.
		{9007199254740993, "9007199254.740993"},
		{10807389191648174, "10807389191.648174"},
		{17075224338592602, "17075224338.592602"},
		{241059836277569141, "241059836277.56915"},
		{750476356149732577, "750476356149.7325"},
		{1000000000000000000, "1000000000000.0"},
		{1092634021795981598, "1092634021795.9816"},
		{math.MaxInt64, "9223372036854.775"},
	} {
		if got := FormatAmount(tc.units); got != tc.want {
			t.Errorf("FormatAmount(%d) = %q, Python repr %q", tc.units, got, tc.want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{5e-324, "5e-324"},
		{2.2250738585072014e-308, "2.2250738585072014e-308"},
		{1e300, "1e+300"},
		{0.1, "0.1"},
		{0.3, "0.3"},
		{1.0 / 3, "0.3333333333333333"},
		{1 << 53, "9007199254740992.0"},
		{1<<53 + 2, "9007199254740994.0"},
		{123456789.123, "123456789.123"},
		{1e-4, "0.0001"},
		{9.999999999999999e-05, "9.999999999999999e-05"},
		{1e15, "1000000000000000.0"},
		{1e16, "1e+16"},
		{1.5e16, "1.5e+16"},
		{9999999999999998, "9999999999999998.0"},
		{12345678901234567, "1.2345678901234568e+16"},
		{-1.5, "-1.5"},
		{math.Copysign(0, -1), "-0.0"},
		{-1e-7, "-1e-07"},
		{1.25e-7, "1.25e-07"},
		{100, "100.0"},
		{1e22, "1e+22"},
		{1e100, "1e+100"},
		{1e-100, "1e-100"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{4.35, "4.35"},
		{0.000123456789, "0.000123456789"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
	} {
		if got := PyRepr(tc.f); got != tc.want {
			t.Errorf("PyRepr(%v) = %q, Python %q", tc.f, got, tc.want)
		}
	}
}

func TestMessage(t *testing.T) {
	if got, want := Message("buy", 1500000, 2000000000, "ETH", "USDT"), "Order buy 1.5 ETH at 2000.0 USDT"; got != want {
		t.Fatalf("Message = %q, want %q", got, want)
	}
	if got, want := Message("sell", 10, 100, "ETH", "USDT"), "Order sell 1e-05 ETH at 0.0001 USDT"; got != want {
		t.Fatalf("Message = %q, want %q", got, want)
	}
}

// Every amount the text names is read back exactly while it has at most 15
// significant digits; above that the check must refuse the ones it cannot.
func TestExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		v := r.Uint64N(1e15)
		if !Exact(v) {
			t.Fatalf("Exact(%d) = false below 10^15 (text %q)", v, FormatAmount(v))
		}
	}
	if Exact(math.MaxInt64) {
		t.Fatal("Exact(2^63-1) = true, but its text is 9223372036854.775")
	}
	if err := CheckExact(math.MaxInt64); !errors.Is(err, ErrInexact) {
		t.Fatalf("CheckExact(2^63-1) = %v", err)
	}
	if Exact(8764417447603609) {
		t.Fatal("Exact(8764417447603609) = true, but its text is 8764417447.60361")
	}
	if err := CheckExact(1500000); err != nil {
		t.Fatalf("CheckExact(1.5) = %v", err)
	}
	// Above 10^15, Exact is true exactly when the text parses back.
	for i := 0; i < 2000; i++ {
		v := r.Uint64N(math.MaxInt64-1e15) + 1e15
		back, err := amount.Parse(FormatAmount(v))
		if Exact(v) != (err == nil && back == v) {
			t.Fatalf("Exact(%d) disagrees with parsing %q back", v, FormatAmount(v))
		}
	}
}

// Python's float() of the text and strconv.ParseFloat agree (both correctly
// rounded), so PyRepr(ParseFloat(PyRepr(f))) is a fixed point and parses
// back to f: the round-trip property repr guarantees.
func TestPyReprRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := PyRepr(f)
		back, err := strconv.ParseFloat(s, 64)
		if err != nil || back != f {
			t.Fatalf("PyRepr(%v) = %q parses back as %v (%v)", f, s, back, err)
		}
	}
}

type legacyVector struct {
	Name       string `json:"name"`
	Side       string `json:"side"`
	Quantity   string `json:"quantity_units"`
	Price      string `json:"price_units"`
	Base       string `json:"base"`
	Quote      string `json:"quote"`
	Message    string `json:"message"`
	Hash       string `json:"hash"`
	Signature  string `json:"signature"`
	Address    string `json:"address"`
	PrivateKey string `json:"private_key"`
}

// testdata/vectors/legacy.json: messages signed by ethers' signMessage.
func TestEthersVectors(t *testing.T) {
	b, err := os.ReadFile("../../testdata/vectors/legacy.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []legacyVector `json:"cases"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 5 {
		t.Fatalf("only %d legacy vectors", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			q, err := strconv.ParseUint(c.Quantity, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			p, err := strconv.ParseUint(c.Price, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := Message(c.Side, q, p, c.Base, c.Quote); got != c.Message {
				t.Errorf("Message = %q, vector %q", got, c.Message)
			}
			h := Hash(c.Message)
			if got := "0x" + common.Bytes2Hex(h[:]); got != c.Hash {
				t.Errorf("Hash = %s, ethers %s", got, c.Hash)
			}
			sig, err := ethsig.ParseHex(c.Signature)
			if err != nil {
				t.Fatal(err)
			}
			who, err := Recover(c.Message, sig)
			if err != nil {
				t.Fatal(err)
			}
			if who.Hex() != c.Address {
				t.Errorf("Recover = %s, signer %s", who.Hex(), c.Address)
			}
			key, err := ethsig.ParseKey(c.PrivateKey)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := Sign(key, c.Message)
			if err != nil {
				t.Fatal(err)
			}
			if got := "0x" + common.Bytes2Hex(ours); got != c.Signature {
				t.Errorf("Sign = %s, ethers %s", got, c.Signature)
			}
			// Any other message recovers someone else.
			if other, err := Recover(c.Message+" ", sig); err == nil && other == who {
				t.Error("signature also recovers the signer for another message")
			}
		})
	}
}

func TestRecoverRejectsMalformed(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(key, "Order buy 1.0 ETH at 200.0 USDT")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Recover("x", sig[:64]); !errors.Is(err, ethsig.ErrLength) {
		t.Errorf("short signature: %v", err)
	}
	bad := append([]byte(nil), sig...)
	bad[64] = 29
	if _, err := Recover("x", bad); !errors.Is(err, ethsig.ErrV) {
		t.Errorf("v=29: %v", err)
	}
}

// FuzzMessage checks that Message never panics and that the text it builds
// names the amounts: parsing the two numbers back gives the inputs whenever
// Exact holds for both.
func FuzzMessage(f *testing.F) {
	f.Add("buy", uint64(1500000), uint64(2000000000), "ETH", "USDT")
	f.Add("sell", uint64(10), uint64(math.MaxInt64), "ΞTH", "")
	f.Fuzz(func(t *testing.T, side string, q, p uint64, base, quote string) {
		if q > amount.Max || p > amount.Max {
			return
		}
		_ = Message(side, q, p, base, quote)
		for _, v := range []uint64{q, p} {
			back, err := amount.Parse(FormatAmount(v))
			if Exact(v) != (err == nil && back == v) {
				t.Fatalf("Exact(%d) inconsistent with %q", v, FormatAmount(v))
			}
		}
	})
}
