package replica

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/client/seqapi"
)

// Batch format (docs/api.md, "Batch format"): a batch body is a JSON array
// of operations; each operation is a JSON object with "op" naming its kind
// and, beside it, exactly the fields of the signed request that brought it
// (integers written as decimal strings):
//
//	[{"op":"order","trader":"0x…","market":"ETH/USDT","side":"buy","orderType":"limit",
//	  "quantity":"1500000","price":"2000000000","nonce":"1","expiry":"1700000000","signature":"0x…"},
//	 {"op":"legacy_order","sender":"0x…","order_type":"buy","base_token":"ETH","quote_token":"USDT",
//	  "quantity":"1.5","price":"2000","signature":"0x…"},
//	 {"op":"cancel",…}, {"op":"cancel_all",…}, {"op":"withdraw",…}, {"op":"deposit",…}]
//
// Each operation carries its signature, so every replica re-verifies it:
// no replica trusts the one that submitted the batch.

// BatchBytesMax is the largest batch body (DESIGN §4).
const BatchBytesMax = seqapi.BatchBytesMax

// wire forms: the request fields plus "op". Embedding promotes the
// request's fields, so the JSON is flat.
type (
	wireOrder struct {
		Op string `json:"op"`
		obapi.OrderRequest
	}
	wireLegacyOrder struct {
		Op string `json:"op"`
		obapi.LegacyOrderRequest
	}
	wireCancel struct {
		Op string `json:"op"`
		obapi.CancelRequest
	}
	wireCancelAll struct {
		Op string `json:"op"`
		obapi.CancelAllRequest
	}
	wireWithdraw struct {
		Op string `json:"op"`
		obapi.WithdrawRequest
	}
	wireDeposit struct {
		Op string `json:"op"`
		obapi.DepositRequest
	}
)

// Wire returns the operation's batch encoding: canonical values (integers
// as decimal strings, lowercase hex), so equal operations encode equally.
func (op *Op) Wire() []byte {
	if op.Kind == OpOrder {
		if b, ok := appendWireOrder(make([]byte, 0, 384), op); ok {
			return b
		}
	}
	return op.wireJSON()
}

// appendWireOrder appends an order's wire form byte for byte as
// encoding/json writes it (wireJSON), without reflection and the four
// nested json.Marshal calls of obapi.Number. ok is false when a string
// value (the market) holds a byte encoding/json would escape; the caller
// then takes wireJSON.
func appendWireOrder(b []byte, op *Op) ([]byte, bool) {
	if !jsonPlain(op.Market) {
		return nil, false
	}
	b = append(b, `{"op":"order","trader":"`...)
	b = append(b, accountHex(op.Signer)...)
	b = append(b, `","market":"`...)
	b = append(b, op.Market...)
	b = append(b, `","side":"`...)
	b = append(b, op.Side.String()...)
	b = append(b, `","orderType":"`...)
	b = append(b, op.OrderType.String()...)
	b = append(b, `","quantity":"`...)
	b = strconv.AppendUint(b, op.Quantity, 10)
	b = append(b, `","price":"`...)
	b = strconv.AppendUint(b, op.Price, 10)
	b = append(b, `","nonce":"`...)
	b = strconv.AppendUint(b, op.Nonce, 10)
	b = append(b, `","expiry":"`...)
	b = strconv.AppendUint(b, op.Expiry, 10)
	b = append(b, `","signature":"0x`...)
	b = hex.AppendEncode(b, op.Sig)
	return append(b, `"}`...), true
}

// jsonPlain reports whether encoding/json writes s as it stands between
// quotes: printable ASCII without the quote, the backslash and the three
// characters it escapes for HTML.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// wireJSON is Wire through encoding/json, for every kind.
func (op *Op) wireJSON() []byte {
	sig := "0x" + common.Bytes2Hex(op.Sig)
	var v any
	switch op.Kind {
	case OpOrder:
		v = wireOrder{Op: "order", OrderRequest: obapi.OrderRequest{
			Trader: accountHex(op.Signer), Market: op.Market, Side: op.Side.String(), OrderType: op.OrderType.String(),
			Quantity: obapi.Uint(op.Quantity), Price: obapi.Uint(op.Price),
			Nonce: obapi.Uint(op.Nonce), Expiry: obapi.Uint(op.Expiry), Signature: sig,
		}}
	case OpLegacyOrder:
		base, quote, _ := strings.Cut(op.Market, "/")
		v = wireLegacyOrder{Op: "legacy_order", LegacyOrderRequest: obapi.LegacyOrderRequest{
			Sender: op.Signer.Hex(), OrderType: op.Side.String(), BaseToken: base, QuoteToken: quote,
			Quantity: obapi.Number(amount.Format(op.Quantity)), Price: obapi.Number(amount.Format(op.Price)),
			Signature: sig,
		}}
	case OpCancel:
		v = wireCancel{Op: "cancel", CancelRequest: obapi.CancelRequest{
			Trader: op.Signer.Hex(), OrderID: hexID(op.CancelID),
			Nonce: obapi.Uint(op.Nonce), Expiry: obapi.Uint(op.Expiry), Signature: sig,
		}}
	case OpCancelAll:
		v = wireCancelAll{Op: "cancel_all", CancelAllRequest: obapi.CancelAllRequest{
			Trader: op.Signer.Hex(), Market: op.Market,
			Nonce: obapi.Uint(op.Nonce), Expiry: obapi.Uint(op.Expiry), Signature: sig,
		}}
	case OpWithdraw:
		v = wireWithdraw{Op: "withdraw", WithdrawRequest: obapi.WithdrawRequest{
			Trader: op.Signer.Hex(), Token: op.Token, Amount: obapi.Uint(op.Amount), Recipient: op.Recipient.Hex(),
			Nonce: obapi.Uint(op.Nonce), Expiry: obapi.Uint(op.Expiry), Signature: sig,
		}}
	case OpDeposit:
		v = wireDeposit{Op: "deposit", DepositRequest: obapi.DepositRequest{
			Account: op.Account.Hex(), Token: op.Token, Amount: obapi.Uint(op.Amount),
			Nonce: obapi.Uint(op.Nonce), Expiry: obapi.Uint(op.Expiry), Signature: sig,
		}}
	default:
		panic("replica: Wire of an operation of unknown kind")
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("replica: encoding an operation: " + err.Error())
	}
	return b
}

// EncodeBatch joins operations' wire forms into one batch body.
func EncodeBatch(wires [][]byte) []byte {
	n := 2
	for _, w := range wires {
		n += len(w) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, w := range wires {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w...)
	}
	return append(b, ']')
}

// BatchOp is one entry of a decoded batch: either an operation ready for
// signature verification, or the reason it could not be decoded.
type BatchOp struct {
	Op  *Op   // nil when Err is set
	Err error // why the entry is skipped
	// ID is set when Op is, and also when the entry decoded far enough to
	// compute its id but a later check failed; zero otherwise.
	ID [32]byte
}

// errBatchNotArray rejects a whole batch body that is not a JSON array.
var errBatchNotArray = errors.New("batch body is not a JSON array of operations")

// DecodeBatch splits a batch body into its operations. A body that is not
// a JSON array (or not UTF-8, or too large) yields an error and no entry;
// inside an array, every element yields an entry, decoded or not, so one
// bad operation never hides the others. Pure: every replica decodes the
// same body the same way.
func DecodeBatch(d *Domain, body []byte) ([]BatchOp, error) {
	raws, err := splitBatch(body)
	if err != nil {
		return nil, err
	}
	out := make([]BatchOp, len(raws))
	for i, raw := range raws {
		out[i] = decodeEntry(d, raw)
	}
	return out, nil
}

func decodeEntry(d *Domain, raw []byte) BatchOp {
	op, err := DecodeOp(d, raw)
	e := BatchOp{Op: op, Err: err}
	if op != nil {
		e.ID = op.ID
	}
	return e
}

// splitBatch checks a batch body and splits its array.
func splitBatch(body []byte) ([]json.RawMessage, error) {
	if len(body) > BatchBytesMax {
		return nil, fmt.Errorf("batch of %d bytes exceeds %d", len(body), BatchBytesMax)
	}
	if !utf8.Valid(body) {
		return nil, errors.New("batch body is not valid UTF-8")
	}
	// One validity pass, then a split that relies on it: encoding/json
	// would scan the body twice more and copy every entry. The result is
	// what json.Unmarshal into []json.RawMessage gives (FuzzSplitBatch).
	if !json.Valid(body) {
		return nil, errBatchNotArray
	}
	i := skipJSONSpace(body, 0)
	switch body[i] {
	case 'n': // null: no entries, as encoding/json decodes it
		return nil, nil
	case '[':
	default:
		return nil, errBatchNotArray
	}
	raws := []json.RawMessage{}
	i = skipJSONSpace(body, i+1)
	if body[i] == ']' {
		return raws, nil
	}
	for {
		end := endOfJSONValue(body, i)
		raws = append(raws, body[i:end:end])
		i = skipJSONSpace(body, end)
		if body[i] == ']' {
			return raws, nil
		}
		i = skipJSONSpace(body, i+1) // past the comma
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfJSONValue returns the index just past the value starting at i of
// valid JSON b: the end of a string, of the matching bracket, or of a
// literal.
func endOfJSONValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte cannot end the string
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 { // the closing bracket of the enclosing array
				return i
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// DecodeOp decodes one batch operation.
func DecodeOp(d *Domain, raw []byte) (*Op, error) {
	// Orders as Wire writes them (nearly every entry) skip encoding/json;
	// anything else takes the general path below, which gives the same
	// result for every input the fast path accepts.
	if r, ok := decodeCanonicalOrder(raw); ok {
		return OrderOp(d, &r)
	}
	return decodeOpJSON(d, raw)
}

// decodeOpJSON is DecodeOp with encoding/json, for any input.
func decodeOpJSON(d *Domain, raw []byte) (*Op, error) {
	var head struct {
		Op string `json:"op"`
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("operation is not a JSON object")
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fieldErr("op", errors.New("expected a string"))
	}
	switch head.Op {
	case "order":
		var w wireOrder
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return OrderOp(d, &w.OrderRequest)
	case "legacy_order":
		var w wireLegacyOrder
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return LegacyOrderOp(&w.LegacyOrderRequest)
	case "cancel":
		var w wireCancel
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return CancelOp(d, &w.CancelRequest)
	case "cancel_all":
		var w wireCancelAll
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return CancelAllOp(d, &w.CancelAllRequest)
	case "withdraw":
		var w wireWithdraw
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return WithdrawOp(d, &w.WithdrawRequest)
	case "deposit":
		var w wireDeposit
		if err := decodeStrict(raw, &w); err != nil {
			return nil, err
		}
		return DepositOp(d, &w.DepositRequest)
	case "":
		return nil, fieldErr("op", errMissing)
	}
	return nil, fieldErr("op", fmt.Errorf("unknown operation %q", clip(head.Op)))
}

// canonicalOrderKeys are the keys of an order's wire form after "op", in
// the order Wire writes them (wireOrder: "op", then obapi.OrderRequest's
// fields as declared).
var canonicalOrderKeys = [...]string{"trader", "market", "side", "orderType", "quantity", "price", "nonce", "expiry", "signature"}

// decodeCanonicalOrder reads an order entry written exactly in Wire's
// layout: {"op":"order", then each of canonicalOrderKeys with a string
// value, in that order, no whitespace, nothing after the object. It
// accepts only printable ASCII string values without backslashes, which
// encoding/json decodes to their bytes as they stand, and only the known
// keys once each, so for every input it accepts, the general path
// (decodeOpJSON) decodes the same request. ok is false for anything else.
func decodeCanonicalOrder(raw []byte) (obapi.OrderRequest, bool) {
	const head = `{"op":"order"`
	if len(raw) < len(head) || string(raw[:len(head)]) != head {
		return obapi.OrderRequest{}, false
	}
	return scanCanonicalOrder(raw[len(head):], true)
}

// decodeCanonicalOrderRequest is decodeCanonicalOrder for a POST /order
// body as encoding/json writes an obapi.OrderRequest (what the SDK and
// the load tools send): the same keys without "op".
func decodeCanonicalOrderRequest(body []byte) (obapi.OrderRequest, bool) {
	if len(body) == 0 || body[0] != '{' {
		return obapi.OrderRequest{}, false
	}
	return scanCanonicalOrder(body[1:], false)
}

// scanCanonicalOrder reads `"key":"value"` pairs for canonicalOrderKeys in
// order (each after a comma when comma is set, and all but the first
// otherwise), then the closing brace and the end of input.
func scanCanonicalOrder(p []byte, comma bool) (r obapi.OrderRequest, ok bool) {
	dst := [...]*string{&r.Trader, &r.Market, &r.Side, &r.OrderType,
		(*string)(&r.Quantity), (*string)(&r.Price), (*string)(&r.Nonce), (*string)(&r.Expiry), &r.Signature}
	for i, key := range canonicalOrderKeys {
		if comma || i > 0 {
			if len(p) == 0 || p[0] != ',' {
				return r, false
			}
			p = p[1:]
		}
		// "key":"
		if len(p) < len(key)+4 || p[0] != '"' || string(p[1:1+len(key)]) != key ||
			p[1+len(key)] != '"' || p[2+len(key)] != ':' || p[3+len(key)] != '"' {
			return r, false
		}
		p = p[4+len(key):]
		end := -1
		for j, c := range p {
			if c == '"' {
				end = j
				break
			}
			if c == '\\' || c < 0x20 || c >= 0x80 {
				return r, false
			}
		}
		if end < 0 {
			return r, false
		}
		*dst[i] = string(p[:end])
		p = p[end+1:]
	}
	return r, len(p) == 1 && p[0] == '}'
}
