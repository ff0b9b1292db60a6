package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/matcher"
)

// OpKind is the kind of an operation carried in a batch.
type OpKind uint8

// Operation kinds. Their wire names (String) are the "op" field of a batch
// operation (docs/api.md, "Batch format").
const (
	OpOrder       OpKind = 1 // EIP-712 Order
	OpLegacyOrder OpKind = 2 // tutorial text order (DESIGN §3.2)
	OpCancel      OpKind = 3 // EIP-712 Cancel
	OpWithdraw    OpKind = 4 // EIP-712 Withdraw
	OpDeposit     OpKind = 5 // bridge-signed deposit
	OpCancelAll   OpKind = 6 // EIP-712 CancelAll
)

// String returns the wire name.
func (k OpKind) String() string {
	switch k {
	case OpOrder:
		return "order"
	case OpLegacyOrder:
		return "legacy_order"
	case OpCancel:
		return "cancel"
	case OpWithdraw:
		return "withdraw"
	case OpDeposit:
		return "deposit"
	case OpCancelAll:
		return "cancel_all"
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// IsOrder reports whether the kind places an order.
func (k OpKind) IsOrder() bool { return k == OpOrder || k == OpLegacyOrder }

// Op is one decoded operation whose fields passed the stateless checks
// (ValidateBasic at the edge, STYLE §4). Its signature is not verified yet:
// Verify does that, separately, because it is the costly part and batches
// verify their operations in parallel.
type Op struct {
	Kind OpKind
	// ID is what the signer signed and the operation's id: the EIP-712
	// digest (order id, cancel id, withdrawal id), the legacy message's
	// EIP-191 hash, or the deposit digest.
	ID [32]byte
	// Signer is who must have signed ID: the trader, the legacy sender, or
	// the bridge for a deposit.
	Signer common.Address
	Sig    []byte
	// Nonce and Expiry (unix seconds) protect against replay; legacy
	// orders have neither (their ID is used once).
	Nonce, Expiry uint64

	// Orders, and the market of a cancel-all ("" = every market).
	Market    string
	Side      matcher.Side
	OrderType matcher.OrderType
	Quantity  uint64
	Price     uint64
	// Cancels.
	CancelID [32]byte
	// Withdrawals and deposits (Account is the credited account of a
	// deposit; a withdrawal debits Signer).
	Token     string
	Amount    uint64
	Recipient common.Address
	Account   common.Address
}

// IDHex is the operation id as 0x hex.
func (op *Op) IDHex() string { return hexID(op.ID) }

// Trader is the account the operation acts for.
func (op *Op) Trader() common.Address {
	if op.Kind == OpDeposit {
		return op.Account
	}
	return op.Signer
}

// HasNonce reports whether (Signer, Nonce) protects the operation against
// replay; legacy orders use their ID instead.
func (op *Op) HasNonce() bool { return op.Kind != OpLegacyOrder }

// Verify checks the signature: it must recover to Signer over ID. It is a
// pure function of the operation (about 50–100 µs of secp256k1 recovery).
func (op *Op) Verify() error {
	got, err := ethsig.Recover(op.ID, op.Sig)
	if err != nil {
		return fmt.Errorf("invalid signature: %v", err)
	}
	if got != op.Signer {
		if op.Kind == OpDeposit {
			return fmt.Errorf("invalid signature: signed by %s, not the bridge %s", got.Hex(), op.Signer.Hex())
		}
		return fmt.Errorf("invalid signature: signed by %s, not %s", got.Hex(), op.Signer.Hex())
	}
	return nil
}

// MatcherOrder is the order to place for an order operation.
func (op *Op) MatcherOrder() matcher.Order {
	return matcher.Order{
		ID: op.IDHex(), Account: accountHex(op.Signer), Market: op.Market,
		Side: op.Side, Type: op.OrderType, Quantity: op.Quantity, Price: op.Price,
	}
}

// reservation returns the token and amount an order must have available:
// a buy holds quantity × price of the quote token, a sell quantity of base.
func (op *Op) reservation() (token string, need uint64, err error) {
	base, quote, err := matcher.SplitMarket(op.Market)
	if err != nil {
		return "", 0, err
	}
	if op.Side == matcher.Sell {
		return base, op.Quantity, nil
	}
	q, err := amount.Quote(op.Quantity, op.Price)
	return quote, q, err
}

// FieldError is a request or operation field that does not decode; its
// text names the field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }

var errMissing = errors.New("missing")

// Domain is what decoding needs to compute ids: the EIP-712 domain, and
// for deposits the chain id, the app and the bridge address.
type Domain struct {
	EIP712 eip712.Domain
	App    string
	// Bridge signs deposits; the zero address means deposits are refused.
	Bridge common.Address
}

// errNoBridge refuses deposits on a cluster without a bridge.
var errNoBridge = errors.New("deposits are disabled: the cluster file names no bridge")

// ---- Decoding requests ----

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// trailing data and type mismatches, with errors that name the field.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// jsonError turns encoding/json's errors into messages that name the field.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		want := te.Type.String()
		if te.Type == reflect.TypeFor[obapi.Number]() {
			want = "a number or a string holding one"
		}
		if te.Field != "" {
			return fieldErr(te.Field, fmt.Errorf("expected %s, got a JSON %s", want, te.Value))
		}
		return fmt.Errorf("invalid JSON: expected an object, got a JSON %s", te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF):
		return errors.New("empty body: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: unexpected end of input")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fieldErr(strings.Trim(f, `"`), errors.New("unknown field"))
	}
	// Errors from obapi.Number carry the field in a wrapped form.
	return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
}

// parseAddress reads a 0x-prefixed 20-byte hex address (any case).
func parseAddress(field, s string) (common.Address, error) {
	if s == "" {
		return common.Address{}, fieldErr(field, errMissing)
	}
	if len(s) != 42 || !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") || !common.IsHexAddress(s) {
		return common.Address{}, fieldErr(field, fmt.Errorf("not a 0x-prefixed 20-byte hex address: %q", clip(s)))
	}
	return common.HexToAddress(s), nil
}

// parseHash32 reads a 0x-prefixed 32-byte hex value.
func parseHash32(field, s string) ([32]byte, error) {
	var h [32]byte
	if s == "" {
		return h, fieldErr(field, errMissing)
	}
	b, ok := strings.CutPrefix(s, "0x")
	if !ok || len(b) != 64 {
		return h, fieldErr(field, fmt.Errorf("not a 0x-prefixed 32-byte hex value: %q", clip(s)))
	}
	for i := 0; i < 32; i++ {
		hi, ok1 := unhex(b[2*i])
		lo, ok2 := unhex(b[2*i+1])
		if !ok1 || !ok2 {
			return h, fieldErr(field, fmt.Errorf("not a 0x-prefixed 32-byte hex value: %q", clip(s)))
		}
		h[i] = hi<<4 | lo
	}
	return h, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func parseSig(s string) ([]byte, error) {
	if s == "" {
		return nil, fieldErr("signature", errMissing)
	}
	// With or without 0x: ethers and wallets write 0x, Python's
	// eth_account writes bare hex.
	if len(s) != 2+2*ethsig.SignatureSize && len(s) != 2*ethsig.SignatureSize {
		return nil, fieldErr("signature", fmt.Errorf("expected %d bytes of hex (r‖s‖v), with or without 0x", ethsig.SignatureSize))
	}
	b, err := ethsig.ParseHex(s)
	if err != nil || len(b) != ethsig.SignatureSize {
		return nil, fieldErr("signature", fmt.Errorf("expected %d bytes of hex (r‖s‖v), with or without 0x", ethsig.SignatureSize))
	}
	return b, nil
}

// parseUnits reads a positive integer amount in base units.
func parseUnits(field string, n obapi.Number) (uint64, error) {
	if n == "" {
		return 0, fieldErr(field, errMissing)
	}
	v, err := amount.ParseUnits(string(n))
	if err != nil {
		return 0, fieldErr(field, err)
	}
	if v == 0 {
		return 0, fieldErr(field, amount.ErrZero)
	}
	return v, nil
}

// parseDecimal reads a positive decimal amount (legacy requests).
func parseDecimal(field string, n obapi.Number) (uint64, error) {
	if n == "" {
		return 0, fieldErr(field, errMissing)
	}
	v, err := amount.ParsePositive(string(n))
	if err != nil {
		return 0, fieldErr(field, err)
	}
	if err := legacy.CheckExact(v); err != nil {
		return 0, fieldErr(field, err)
	}
	return v, nil
}

// parseUint64 reads a uint64 (nonces, expiries) written in decimal.
func parseUint64(field string, n obapi.Number) (uint64, error) {
	s := string(n)
	if s == "" {
		return 0, fieldErr(field, errMissing)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fieldErr(field, fmt.Errorf("expected a non-negative decimal integer, got %q", clip(s)))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fieldErr(field, fmt.Errorf("exceeds 2^64-1: %q", clip(s)))
	}
	return v, nil
}

func parseToken(field, s string) (string, error) {
	if s == "" {
		return "", fieldErr(field, errMissing)
	}
	if err := obapi.CheckTokenName(s); err != nil {
		return "", fieldErr(field, err)
	}
	return s, nil
}

// The token rule is shared with the services in front of the replica; its
// bound must be the matcher's (this fails to compile when they differ).
const _ = uint(obapi.TokenBytesMax-matcher.NameBytesMax) + uint(matcher.NameBytesMax-obapi.TokenBytesMax)

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

func parseMarket(s string) (string, error) {
	if s == "" {
		return "", fieldErr("market", errMissing)
	}
	if _, _, err := matcher.SplitMarket(s); err != nil || !printable(s) {
		return "", fieldErr("market", fmt.Errorf("invalid market %q: expected BASE/QUOTE such as ETH/USDT", clip(s)))
	}
	return s, nil
}

func parseSide(field, s string) (matcher.Side, error) {
	if s == "" {
		return 0, fieldErr(field, errMissing)
	}
	side, err := matcher.ParseSide(s)
	if err != nil {
		return 0, fieldErr(field, fmt.Errorf("expected \"buy\" or \"sell\", got %q", clip(s)))
	}
	return side, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// parseAuth reads the fields every nonced, signed operation ends with:
// nonce, expiry and signature, checked in that order.
func (op *Op) parseAuth(nonce, expiry obapi.Number, sig string) error {
	var err error
	if op.Nonce, err = parseUint64("nonce", nonce); err != nil {
		return err
	}
	if op.Expiry, err = parseUint64("expiry", expiry); err != nil {
		return err
	}
	op.Sig, err = parseSig(sig)
	return err
}

// checkOrderAmounts runs the matcher's stateless checks that are about the
// amounts (dust orders whose quote rounds to zero, overflow).
func checkOrderAmounts(op *Op) error {
	o := op.MatcherOrder()
	switch err := o.ValidateBasic(); err {
	case nil:
		return nil
	case matcher.ErrZeroQuoteAmount:
		return fieldErr("quantity", errors.New("quantity × price is less than one base unit of the quote token"))
	case matcher.ErrQuoteOverflow, matcher.ErrAmountTooLarge:
		return fieldErr("quantity", errors.New("quantity × price exceeds 2^63-1 base units"))
	default:
		return err
	}
}

// OrderOp builds an operation from an EIP-712 order request.
func OrderOp(d *Domain, r *obapi.OrderRequest) (*Op, error) {
	op := &Op{Kind: OpOrder}
	var err error
	if op.Signer, err = parseAddress("trader", r.Trader); err != nil {
		return nil, err
	}
	if op.Market, err = parseMarket(r.Market); err != nil {
		return nil, err
	}
	if op.Side, err = parseSide("side", r.Side); err != nil {
		return nil, err
	}
	if r.OrderType == "" {
		return nil, fieldErr("orderType", errMissing)
	}
	if op.OrderType, err = matcher.ParseOrderType(r.OrderType); err != nil {
		return nil, fieldErr("orderType", fmt.Errorf("expected %s, got %q", matcher.OrderTypeNames, clip(r.OrderType)))
	}
	if op.Quantity, err = parseUnits("quantity", r.Quantity); err != nil {
		return nil, err
	}
	if op.Price, err = parseUnits("price", r.Price); err != nil {
		return nil, err
	}
	if err := op.parseAuth(r.Nonce, r.Expiry, r.Signature); err != nil {
		return nil, err
	}
	if err := checkOrderAmounts(op); err != nil {
		return nil, err
	}
	op.ID = d.EIP712.Digest(&eip712.Order{
		Trader: op.Signer, Market: op.Market, Side: r.Side, OrderType: r.OrderType,
		Quantity: op.Quantity, Price: op.Price, Nonce: op.Nonce, Expiry: op.Expiry,
	})
	return op, nil
}

// LegacyOrderOp builds an operation from a tutorial (legacy) order.
func LegacyOrderOp(r *obapi.LegacyOrderRequest) (*Op, error) {
	op := &Op{Kind: OpLegacyOrder, OrderType: matcher.Limit}
	var err error
	if op.Signer, err = parseAddress("sender", r.Sender); err != nil {
		return nil, err
	}
	if op.Side, err = parseSide("order_type", r.OrderType); err != nil {
		return nil, err
	}
	base, err := parseToken("base_token", r.BaseToken)
	if err != nil {
		return nil, err
	}
	quote, err := parseToken("quote_token", r.QuoteToken)
	if err != nil {
		return nil, err
	}
	if base == quote {
		return nil, fieldErr("quote_token", errors.New("must differ from base_token"))
	}
	op.Market = base + "/" + quote
	if len(op.Market) > matcher.NameBytesMax {
		return nil, fieldErr("quote_token", errors.New("market name too long"))
	}
	if op.Quantity, err = parseDecimal("quantity", r.Quantity); err != nil {
		return nil, err
	}
	if op.Price, err = parseDecimal("price", r.Price); err != nil {
		return nil, err
	}
	if op.Sig, err = parseSig(r.Signature); err != nil {
		return nil, err
	}
	if err := checkOrderAmounts(op); err != nil {
		return nil, err
	}
	op.ID = legacy.Hash(legacy.Message(r.OrderType, op.Quantity, op.Price, base, quote))
	return op, nil
}

// CancelOp builds an operation from an EIP-712 cancel request.
func CancelOp(d *Domain, r *obapi.CancelRequest) (*Op, error) {
	op := &Op{Kind: OpCancel}
	var err error
	if op.Signer, err = parseAddress("trader", r.Trader); err != nil {
		return nil, err
	}
	if op.CancelID, err = parseHash32("orderId", r.OrderID); err != nil {
		return nil, err
	}
	if err := op.parseAuth(r.Nonce, r.Expiry, r.Signature); err != nil {
		return nil, err
	}
	op.ID = d.EIP712.Digest(&eip712.Cancel{Trader: op.Signer, OrderID: op.CancelID, Nonce: op.Nonce, Expiry: op.Expiry})
	return op, nil
}

// CancelAllOp builds an operation from an EIP-712 cancel-all request. An
// empty market means every market.
func CancelAllOp(d *Domain, r *obapi.CancelAllRequest) (*Op, error) {
	op := &Op{Kind: OpCancelAll}
	var err error
	if op.Signer, err = parseAddress("trader", r.Trader); err != nil {
		return nil, err
	}
	if r.Market != "" {
		if op.Market, err = parseMarket(r.Market); err != nil {
			return nil, err
		}
	}
	if err := op.parseAuth(r.Nonce, r.Expiry, r.Signature); err != nil {
		return nil, err
	}
	op.ID = d.EIP712.Digest(&eip712.CancelAll{Trader: op.Signer, Market: op.Market, Nonce: op.Nonce, Expiry: op.Expiry})
	return op, nil
}

// WithdrawOp builds an operation from an EIP-712 withdraw request.
func WithdrawOp(d *Domain, r *obapi.WithdrawRequest) (*Op, error) {
	op := &Op{Kind: OpWithdraw}
	var err error
	if op.Signer, err = parseAddress("trader", r.Trader); err != nil {
		return nil, err
	}
	if op.Token, err = parseToken("token", r.Token); err != nil {
		return nil, err
	}
	if op.Amount, err = parseUnits("amount", r.Amount); err != nil {
		return nil, err
	}
	if op.Recipient, err = parseAddress("recipient", r.Recipient); err != nil {
		return nil, err
	}
	if err := op.parseAuth(r.Nonce, r.Expiry, r.Signature); err != nil {
		return nil, err
	}
	op.ID = d.EIP712.Digest(&eip712.Withdraw{
		Trader: op.Signer, Token: op.Token, Amount: op.Amount, Recipient: op.Recipient,
		Nonce: op.Nonce, Expiry: op.Expiry,
	})
	return op, nil
}

// DepositOp builds an operation from a bridge-signed deposit request.
func DepositOp(d *Domain, r *obapi.DepositRequest) (*Op, error) {
	op := &Op{Kind: OpDeposit, Signer: d.Bridge}
	var err error
	if op.Account, err = parseAddress("account", r.Account); err != nil {
		return nil, err
	}
	if op.Token, err = parseToken("token", r.Token); err != nil {
		return nil, err
	}
	if op.Amount, err = parseUnits("amount", r.Amount); err != nil {
		return nil, err
	}
	if err := op.parseAuth(r.Nonce, r.Expiry, r.Signature); err != nil {
		return nil, err
	}
	if d.Bridge == (common.Address{}) {
		return nil, errNoBridge
	}
	dep := obapi.Deposit{ChainID: d.EIP712.ChainID, App: d.App, Account: op.Account, Token: op.Token,
		Amount: op.Amount, Nonce: op.Nonce, Expiry: op.Expiry}
	op.ID = dep.Digest()
	return op, nil
}

// ---- Requests from HTTP bodies ----

// DecodeOrderRequest decodes a POST /order body: an EIP-712 order, or a
// legacy order when it has a "sender" field.
func DecodeOrderRequest(d *Domain, body []byte) (*Op, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body: expected a JSON object")
	}
	// A body laid out as encoding/json writes an OrderRequest skips the
	// two decoding passes below, with the same result (batch.go).
	if r, ok := decodeCanonicalOrderRequest(body); ok {
		return OrderOp(d, &r)
	}
	return decodeOrderRequestGeneral(d, body)
}

// decodeOrderRequestGeneral decodes any POST /order body with
// encoding/json: the EIP-712 form or the legacy one, strictly.
func decodeOrderRequestGeneral(d *Domain, body []byte) (*Op, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, jsonError(err)
	}
	if _, isLegacy := keys["sender"]; isLegacy {
		var r obapi.LegacyOrderRequest
		if err := decodeStrict(body, &r); err != nil {
			return nil, err
		}
		return LegacyOrderOp(&r)
	}
	var r obapi.OrderRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	return OrderOp(d, &r)
}

// DecodeCancelRequest decodes a POST /cancel body.
func DecodeCancelRequest(d *Domain, body []byte) (*Op, error) {
	var r obapi.CancelRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	return CancelOp(d, &r)
}

// DecodeCancelAllRequest decodes a POST /cancel_all body.
func DecodeCancelAllRequest(d *Domain, body []byte) (*Op, error) {
	var r obapi.CancelAllRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	return CancelAllOp(d, &r)
}

// DecodeWithdrawRequest decodes a POST /withdraw body.
func DecodeWithdrawRequest(d *Domain, body []byte) (*Op, error) {
	var r obapi.WithdrawRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	return WithdrawOp(d, &r)
}

// DecodeDepositRequest decodes a POST /deposit body.
func DecodeDepositRequest(d *Domain, body []byte) (*Op, error) {
	var r obapi.DepositRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	return DepositOp(d, &r)
}

func hexID(id [32]byte) string { return common.Hash(id).Hex() }
