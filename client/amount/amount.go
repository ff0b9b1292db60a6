// Package amount implements seqbook's fixed-point numbers: every quantity,
// price and balance is an integer count of "base units", 10^-6 of a token
// (DESIGN §2). Parsing works on the decimal text itself, never through a
// float, so "0.1" is exactly 100000 units.
package amount

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Decimals is the number of fractional digits of every amount.
const Decimals = 6

// Scale is 10^Decimals: the number of base units in one whole token.
const Scale uint64 = 1_000_000

// Max is the largest amount in base units (2^63-1), so amounts also fit
// signed 64-bit arithmetic in every language that verifies them.
const Max uint64 = math.MaxInt64

// Errors returned by Parse. They are wrapped with the offending text.
var (
	ErrEmpty       = errors.New("empty amount")
	ErrSyntax      = errors.New("not a decimal number")
	ErrNegative    = errors.New("negative amount")
	ErrTooPrecise  = errors.New("more than 6 decimals")
	ErrOverflow    = errors.New("amount exceeds 2^63-1 base units")
	ErrZero        = errors.New("must be greater than zero")
	ErrMulOverflow = errors.New("quantity × price overflows")
)

// Parse reads a decimal text such as "1.5", "2000", "0.000001" or "1e3"
// and returns base units. Zero is allowed here; use ParsePositive for
// quantities and prices.
func Parse(s string) (uint64, error) {
	if s == "" {
		return 0, ErrEmpty
	}
	orig := s
	if s[0] == '-' {
		return 0, fmt.Errorf("%w: %q", ErrNegative, orig)
	}
	if s[0] == '+' {
		s = s[1:]
	}
	// Exponent (JSON numbers may carry one: 1e3, 1.5E-2).
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || i+1 == len(s) || e > 100 || e < -100 {
			return 0, fmt.Errorf("%w: %q", ErrSyntax, orig)
		}
		exp = e
		s = s[:i]
	}
	intPart, fracPart := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, fracPart = s[:i], s[i+1:]
	}
	if intPart == "" && fracPart == "" {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, orig)
	}
	digits := intPart + fracPart
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w: %q", ErrSyntax, orig)
		}
	}
	// value = digits × 10^(exp - len(fracPart)); we want value × 10^6.
	shift := exp - len(fracPart) + Decimals
	if shift < 0 {
		// The digits dropped by the shift must all be zero.
		cut := -shift
		if cut > len(digits) {
			cut = len(digits)
		}
		for _, c := range digits[len(digits)-cut:] {
			if c != '0' {
				return 0, fmt.Errorf("%w: %q", ErrTooPrecise, orig)
			}
		}
		digits = digits[:len(digits)-cut]
		shift = 0
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, nil
	}
	if len(digits)+shift > 19 {
		return 0, fmt.Errorf("%w: %q", ErrOverflow, orig)
	}
	v, err := strconv.ParseUint(digits+strings.Repeat("0", shift), 10, 64)
	if err != nil || v > Max {
		return 0, fmt.Errorf("%w: %q", ErrOverflow, orig)
	}
	return v, nil
}

// ParsePositive is Parse that also refuses zero.
func ParsePositive(s string) (uint64, error) {
	v, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, fmt.Errorf("%w: %q", ErrZero, s)
	}
	return v, nil
}

// ParseUnits reads an integer count of base units ("1500000"), as used in
// the EIP-712 request fields. It accepts up to 2^63-1.
func ParseUnits(s string) (uint64, error) {
	if s == "" {
		return 0, ErrEmpty
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("%w: %q", ErrNegative, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q (expected an integer number of base units)", ErrSyntax, s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > Max {
		return 0, fmt.Errorf("%w: %q", ErrOverflow, s)
	}
	return v, nil
}

// Format writes base units as a decimal string with no trailing zeros:
// 1500000 → "1.5", 2000000000 → "2000", 1 → "0.000001".
func Format(v uint64) string {
	whole, frac := v/Scale, v%Scale
	if frac == 0 {
		return strconv.FormatUint(whole, 10)
	}
	f := fmt.Sprintf("%06d", frac)
	return strconv.FormatUint(whole, 10) + "." + strings.TrimRight(f, "0")
}

// Quote returns floor(quantity × price / 10^6): the quote-token amount of a
// fill, computed in 128 bits so no intermediate product overflows.
func Quote(quantity, price uint64) (uint64, error) {
	hi, lo := bits.Mul64(quantity, price)
	if hi >= Scale {
		return 0, ErrMulOverflow
	}
	q, _ := bits.Div64(hi, lo, Scale)
	if q > Max {
		return 0, ErrMulOverflow
	}
	return q, nil
}
