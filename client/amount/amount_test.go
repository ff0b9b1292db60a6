package amount

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  error
	}{
		// DESIGN §2: decimal strings and JSON number texts, exactly.
		{"1.5", 1_500_000, nil},
		{"2000", 2_000_000_000, nil},
		{"2000.0", 2_000_000_000, nil},
		{"1e3", 1_000_000_000, nil},
		{"1E3", 1_000_000_000, nil},
		{"1.5e-2", 15_000, nil},
		{"1e-6", 1, nil},
		{"1e-06", 1, nil},
		{"0.000001", 1, nil},
		{"0.1", 100_000, nil},
		{".5", 500_000, nil},
		{"5.", 5_000_000, nil},
		{"+7", 7_000_000, nil},
		{"007.100", 7_100_000, nil},
		{"0", 0, nil},
		{"0.0", 0, nil},
		{"0e5", 0, nil},
		{"1.50000000000", 1_500_000, nil}, // trailing zeros past 6 decimals are exact
		{"15e-7", 0, ErrTooPrecise},
		{"150e-7", 15, nil},
		{"9223372036854.775807", math.MaxInt64, nil},
		{"9223372036854775807e-6", math.MaxInt64, nil},
		{"0.0000001", 0, ErrTooPrecise},
		{"1.2345678", 0, ErrTooPrecise},
		{"1e-7", 0, ErrTooPrecise},
		{"-1", 0, ErrNegative},
		{"-0", 0, ErrNegative},
		{"9223372036854.775808", 0, ErrOverflow},
		{"9223372036855", 0, ErrOverflow},
		{"18446744073709.551615", 0, ErrOverflow},
		{"1e20", 0, ErrOverflow},
		{"99999999999999999999999", 0, ErrOverflow},
		{"", 0, ErrEmpty},
		{"abc", 0, ErrSyntax},
		{"1.2.3", 0, ErrSyntax},
		{".", 0, ErrSyntax},
		{"e5", 0, ErrSyntax},
		{"1e", 0, ErrSyntax},
		{"1e+", 0, ErrSyntax},
		{"1e1000", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{"1,5", 0, ErrSyntax},
		{" 1", 0, ErrSyntax},
		{"1 ", 0, ErrSyntax},
		{"NaN", 0, ErrSyntax},
		{"Infinity", 0, ErrSyntax},
		{"١", 0, ErrSyntax}, // an Arabic-Indic digit is not a digit here
		{"++1", 0, ErrSyntax},
	} {
		got, err := Parse(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Parse(%q) = %d, %v; want error %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePositive(t *testing.T) {
	for _, s := range []string{"0", "0.000", "0e9"} {
		if _, err := ParsePositive(s); !errors.Is(err, ErrZero) {
			t.Errorf("ParsePositive(%q) = %v, want ErrZero", s, err)
		}
	}
	if v, err := ParsePositive("0.000001"); err != nil || v != 1 {
		t.Errorf("ParsePositive(0.000001) = %d, %v", v, err)
	}
	if _, err := ParsePositive("-1"); !errors.Is(err, ErrNegative) {
		t.Errorf("ParsePositive(-1) = %v", err)
	}
}

func TestParseUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  error
	}{
		{"1500000", 1_500_000, nil},
		{"0", 0, nil},
		{"9223372036854775807", math.MaxInt64, nil},
		{"9223372036854775808", 0, ErrOverflow},
		{"18446744073709551616", 0, ErrOverflow},
		{"1.5", 0, ErrSyntax},
		{"1e6", 0, ErrSyntax},
		{"+1", 0, ErrSyntax},
		{"-1", 0, ErrNegative},
		{"", 0, ErrEmpty},
	} {
		got, err := ParseUnits(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseUnits(%q) = %d, %v; want %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseUnits(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want string
	}{
		{0, "0"},
		{1, "0.000001"},
		{10, "0.00001"},
		{1_500_000, "1.5"},
		{2_000_000_000, "2000"},
		{1_000_001, "1.000001"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MaxUint64, "18446744073709.551615"},
	} {
		if got := Format(tc.v); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// Format and Parse are inverse on every valid amount.
func TestFormatParseRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 20000; i++ {
		v := r.Uint64N(Max+1) >> r.IntN(63)
		back, err := Parse(Format(v))
		if err != nil || back != v {
			t.Fatalf("Parse(Format(%d)) = Parse(%q) = %d, %v", v, Format(v), back, err)
		}
	}
}

// Quote against math/big on random and edge values.
func TestQuoteAgainstBigInt(t *testing.T) {
	scale := new(big.Int).SetUint64(Scale)
	max := new(big.Int).SetUint64(Max)
	check := func(q, p uint64) {
		want := new(big.Int).Mul(new(big.Int).SetUint64(q), new(big.Int).SetUint64(p))
		want.Quo(want, scale)
		got, err := Quote(q, p)
		if want.Cmp(max) > 0 {
			if !errors.Is(err, ErrMulOverflow) {
				t.Fatalf("Quote(%d, %d) = %d, %v; want overflow (exact %s)", q, p, got, err, want)
			}
			return
		}
		if err != nil || got != want.Uint64() {
			t.Fatalf("Quote(%d, %d) = %d, %v; want %s", q, p, got, err, want)
		}
	}
	edges := []uint64{0, 1, 999_999, Scale, Scale + 1, 1 << 32, 3_037_000_499_976, Max / Scale, Max, math.MaxUint64}
	for _, q := range edges {
		for _, p := range edges {
			check(q, p)
		}
	}
	r := rand.New(rand.NewPCG(21, 22))
	for i := 0; i < 20000; i++ {
		check(r.Uint64()>>r.IntN(64), r.Uint64()>>r.IntN(64))
	}
	// The DESIGN example: 1.5 ETH at 2000 USDT costs 3000 USDT.
	if v, err := Quote(1_500_000, 2_000_000_000); err != nil || v != 3_000_000_000 {
		t.Fatalf("Quote(1.5, 2000) = %d, %v", v, err)
	}
	// Flooring: 0.000001 at 0.5 is 0.0000005, floored to 0.
	if v, err := Quote(1, 500_000); err != nil || v != 0 {
		t.Fatalf("Quote(0.000001, 0.5) = %d, %v", v, err)
	}
}

// bigParse is the reference parser for the fuzz oracle: math/big rationals.
func bigParse(s string) (*big.Rat, bool) {
	if s == "" || strings.ContainsAny(s, " _xXpPiInN/") || s[0] == '-' {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// FuzzParse: Parse never panics; what it accepts formats and parses back to
// the same value, and agrees with an exact rational reading of the text.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1.5", "2000", "1e3", "0.000001", "9223372036854.775807", "9223372036854.775808",
		"-1", "", ".", "1e-7", "1.2345678", "abc", "+0.5", "1E+2", "00.10", "1e99999999999999999999"} {
		f.Add(s)
	}
	scale := new(big.Rat).SetInt64(int64(Scale))
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v > Max {
			t.Fatalf("Parse(%q) = %d > Max", s, v)
		}
		back, err := Parse(Format(v))
		if err != nil || back != v {
			t.Fatalf("Parse(%q) = %d but Parse(Format) = %d, %v", s, v, back, err)
		}
		if r, ok := bigParse(s); ok {
			r.Mul(r, scale)
			if !r.IsInt() || r.Num().Uint64() != v || !r.Num().IsUint64() {
				t.Fatalf("Parse(%q) = %d, exact value ×10^6 = %s", s, v, r.RatString())
			}
		}
	})
}

// FuzzParseUnits: never panics, accepted values print back as the same
// digits (leading zeros aside).
func FuzzParseUnits(f *testing.F) {
	for _, s := range []string{"0", "1500000", "9223372036854775807", "9223372036854775808", "-1", "1.5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseUnits(s)
		if err != nil {
			return
		}
		if v > Max {
			t.Fatalf("ParseUnits(%q) = %d > Max", s, v)
		}
		trimmed := strings.TrimLeft(s, "0")
		if trimmed == "" {
			trimmed = "0"
		}
		if strconv.FormatUint(v, 10) != trimmed {
			t.Fatalf("ParseUnits(%q) = %d", s, v)
		}
	})
}
