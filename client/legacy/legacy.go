// Package legacy is the tutorial's text order form (DESIGN §3.2): an
// EIP-191 personal_sign of
//
//	Order {side} {quantity} {base} at {price} {quote}
//
// with the numbers written the way Python writes a float (repr), because the
// original tutorial clients build the message with an f-string over pydantic
// floats. Matching that layout byte for byte is what lets the unchanged
// Python scripts' signatures verify here.
//
// The form carries no nonce, no expiry and no chain id: a captured
// signature can be replayed, so servers accept each signature once and the
// real API is EIP-712 (client/eip712). This form is for the tutorial only.
package legacy

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
)

// ErrInexact reports an amount whose Python float text does not name it
// exactly (it needs more precision than a float64 holds), so a signature
// over the text would also cover neighbouring amounts.
var ErrInexact = errors.New("amount is not exactly representable in the legacy text form (a float64 cannot hold it)")

// Message builds the text a legacy client signs. quantity and price are in
// base units (6 decimals); side, base and quote are written as given.
//
// Callers that verify a signature over user-chosen amounts should first
// check both with Exact, or two different amounts could share one message.
func Message(side string, quantity, price uint64, base, quote string) string {
	return "Order " + side + " " + FormatAmount(quantity) + " " + base + " at " + FormatAmount(price) + " " + quote
}

// FormatAmount writes base units the way Python's repr writes the float a
// Python client holds for the same decimal text.
//
// How: amount.Format gives the exact decimal text ("1.5"), and ParseFloat
// rounds that text correctly to a float64, exactly as Python's float() and
// json module do with the same text. (float64(v)/1e6 is also correctly
// rounded, but only while v < 2^53; above that float64(v) already rounds and
// the double rounding can land on the neighbouring float, e.g. for
// 9007199254740993 units.) PyRepr then lays the float out.
func FormatAmount(v uint64) string {
	f, err := strconv.ParseFloat(amount.Format(v), 64)
	if err != nil {
		// Format's output is always a finite decimal within float64 range.
		panic("legacy: ParseFloat of a formatted amount: " + err.Error())
	}
	return PyRepr(f)
}

// Exact reports whether FormatAmount(v) reads back as exactly v base units.
// It holds for every amount below 10^15 base units (a billion tokens): a
// decimal of at most 15 significant digits survives the trip through a
// float64 and its shortest repr. Above that it holds for some amounts and
// not others (8764417447.603609 prints as 8764417447.60361); a server
// refuses those (ErrInexact).
func Exact(v uint64) bool {
	back, err := amount.Parse(FormatAmount(v))
	return err == nil && back == v
}

// CheckExact returns ErrInexact, wrapped with the amount, when Exact is false.
func CheckExact(v uint64) error {
	if !Exact(v) {
		return fmt.Errorf("%w: %s", ErrInexact, amount.Format(v))
	}
	return nil
}

// PyRepr formats a float64 exactly as CPython's repr(float) does: the
// shortest digits that round-trip (the same digits Go's 'e' format with
// precision -1 picks), in fixed notation with at least one fractional
// digit when the decimal exponent e (value = d.ddd × 10^e) satisfies
// -4 <= e < 16, otherwise in scientific notation with a signed exponent
// of at least two digits and no ".0" on a one-digit mantissa
// (1e-05, 1.5e+16). Non-finite values print as inf, -inf and nan.
func PyRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
		f = -f
	}
	if f == 0 {
		return sign + "0.0"
	}
	// s is "d.ddde±XX" (or "de±XX" for one digit) with the shortest digits.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expText, ok := strings.Cut(s, "e")
	if !ok {
		panic("legacy: unexpected FormatFloat output " + s)
	}
	exp, err := strconv.Atoi(expText)
	if err != nil {
		panic("legacy: unexpected FormatFloat exponent " + s)
	}
	digits := strings.Replace(mant, ".", "", 1)

	if exp < -4 || exp >= 16 {
		out := digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		esign := "+"
		if exp < 0 {
			esign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, out, esign, exp)
	}
	// Fixed notation: the decimal point goes after digit exp+1.
	point := exp + 1
	var intPart, fracPart string
	switch {
	case point <= 0:
		intPart, fracPart = "0", strings.Repeat("0", -point)+digits
	case point >= len(digits):
		intPart, fracPart = digits+strings.Repeat("0", point-len(digits)), "0"
	default:
		intPart, fracPart = digits[:point], digits[point:]
	}
	return sign + intPart + "." + fracPart
}

// Hash returns the EIP-191 personal_sign hash of a message:
// keccak256("\x19Ethereum Signed Message:\n" + len(msg) + msg), len in
// bytes written in decimal. This is also the legacy order's id.
func Hash(msg string) [32]byte {
	prefix := "\x19Ethereum Signed Message:\n" + strconv.Itoa(len(msg))
	return eip712.Keccak256([]byte(prefix), []byte(msg))
}

// Sign signs a message the way personal_sign, ethers' signMessage and
// eth_account's sign_message do; the signature is r‖s‖v with v 27 or 28.
func Sign(key *ecdsa.PrivateKey, msg string) ([]byte, error) {
	return ethsig.Sign(key, Hash(msg))
}

// Recover returns the address that signed msg. Like ethsig.Recover it
// refuses high-s signatures and a v other than 27, 28, 0 or 1.
func Recover(msg string, sig []byte) (common.Address, error) {
	return ethsig.Recover(Hash(msg), sig)
}
