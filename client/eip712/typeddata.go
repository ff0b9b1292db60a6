package eip712

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// This file turns the type strings above into the JSON shape wallets take
// (eth_signTypedData_v4): what `GET /eip712` serves and what a client hands
// a wallet to sign. The field lists are parsed from the same constants the
// static encoder hashes, so the two cannot drift apart.

// Field is one member of a struct type, as eth_signTypedData_v4 lists it.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DomainJSON is the domain object of an eth_signTypedData_v4 request.
// ChainID is a JSON number, as wallets' examples write it.
type DomainJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	ChainID uint64 `json:"chainId"`
}

// Description is what `GET /eip712` serves: the domain and every type a
// trader signs, ready to pass to a wallet with a message.
type Description struct {
	Domain DomainJSON         `json:"domain"`
	Types  map[string][]Field `json:"types"`
}

// TypedData is a complete eth_signTypedData_v4 request. Integers in Message
// are decimal strings (uint64 values overflow a JavaScript number), bytes32
// values 0x hex and addresses lower-case hex, the forms ethers' getPayload
// produces.
type TypedData struct {
	Types       map[string][]Field `json:"types"`
	PrimaryType string             `json:"primaryType"`
	Domain      DomainJSON         `json:"domain"`
	Message     map[string]any     `json:"message"`
}

// ParseType splits an encoded type such as "Lock(string app,uint64 view)"
// into its name and fields. It accepts only what seqbook's types use: one
// struct, no nested struct references, fields as "type name" separated by
// commas without spaces.
func ParseType(encoded string) (string, []Field, error) {
	open := strings.IndexByte(encoded, '(')
	if open <= 0 || !strings.HasSuffix(encoded, ")") {
		return "", nil, fmt.Errorf("eip712: type %q is not Name(fields)", encoded)
	}
	name := encoded[:open]
	if !isIdent(name) {
		return "", nil, fmt.Errorf("eip712: type name %q is not an identifier", name)
	}
	body := encoded[open+1 : len(encoded)-1]
	if body == "" {
		return name, nil, nil
	}
	var fields []Field
	seen := map[string]bool{}
	for _, member := range strings.Split(body, ",") {
		typ, fname, ok := strings.Cut(member, " ")
		if !ok || !isIdent(fname) || !isAtomicType(typ) {
			return "", nil, fmt.Errorf("eip712: member %q of %s is not \"type name\" with an atomic type", member, name)
		}
		if seen[fname] {
			return "", nil, fmt.Errorf("eip712: member %q of %s appears twice", fname, name)
		}
		seen[fname] = true
		fields = append(fields, Field{Name: fname, Type: typ})
	}
	return name, fields, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isAtomicType accepts the EIP-712 atomic and dynamic types seqbook's
// messages may use.
func isAtomicType(t string) bool {
	switch t {
	case "address", "bool", "string", "bytes":
		return true
	}
	for _, p := range []string{"uint", "int"} {
		if rest, ok := strings.CutPrefix(t, p); ok {
			n, err := strconv.Atoi(rest)
			return err == nil && n >= 8 && n <= 256 && n%8 == 0 && rest[0] != '0'
		}
	}
	if rest, ok := strings.CutPrefix(t, "bytes"); ok {
		n, err := strconv.Atoi(rest)
		return err == nil && n >= 1 && n <= 32 && rest[0] != '0'
	}
	return false
}

// typeFields holds the parsed field list of every type of the package by
// name, built once from the type strings.
var typeFields = func() map[string][]Field {
	m := map[string][]Field{}
	for _, t := range []string{TypeDomain, TypeOrder, TypeCancel, TypeCancelAll, TypeWithdraw, TypeLock, TypeFinalize, TypeBalance, TypeWithdrawal, TypeState} {
		name, fields, err := ParseType(t)
		if err != nil {
			panic(err) // the constants of this package: a programmer error
		}
		m[name] = fields
	}
	return m
}()

var (
	fieldsDomain    = typeFields["EIP712Domain"]
	fieldsOrder     = typeFields["Order"]
	fieldsCancel    = typeFields["Cancel"]
	fieldsCancelAll = typeFields["CancelAll"]
	fieldsWithdraw  = typeFields["Withdraw"]
)

// TypeFields returns the field list of one of the package's types by name
// ("Order", "Lock", "EIP712Domain", …), or false for an unknown name. The
// slice is shared: do not modify it.
func TypeFields(name string) ([]Field, bool) {
	f, ok := typeFields[name]
	return f, ok
}

// JSON returns the domain as eth_signTypedData_v4 writes it.
func (d Domain) JSON() DomainJSON {
	return DomainJSON{Name: DomainName, Version: DomainVersion, ChainID: d.ChainID}
}

// Description returns the domain and the trader types (Order, Cancel,
// CancelAll, Withdraw) with EIP712Domain: the body of `GET /eip712`.
func (d Domain) Description() Description {
	return Description{
		Domain: d.JSON(),
		Types: map[string][]Field{
			"EIP712Domain": fieldsDomain,
			"Order":        fieldsOrder,
			"Cancel":       fieldsCancel,
			"CancelAll":    fieldsCancelAll,
			"Withdraw":     fieldsWithdraw,
		},
	}
}

func (d Domain) typedData(primary string, fields []Field, msg map[string]any) TypedData {
	return TypedData{
		Types:       map[string][]Field{"EIP712Domain": fieldsDomain, primary: fields},
		PrimaryType: primary,
		Domain:      d.JSON(),
		Message:     msg,
	}
}

func u64(v uint64) string          { return strconv.FormatUint(v, 10) }
func addr(a common.Address) string { return strings.ToLower(a.Hex()) }
func b32(w [32]byte) string        { return "0x" + common.Bytes2Hex(w[:]) }

// OrderTypedDataOf returns the eth_signTypedData_v4 request for an order.
func (d Domain) OrderTypedDataOf(o *Order) TypedData {
	return d.typedData("Order", fieldsOrder, map[string]any{
		"trader":    addr(o.Trader),
		"market":    o.Market,
		"side":      o.Side,
		"orderType": o.OrderType,
		"quantity":  u64(o.Quantity),
		"price":     u64(o.Price),
		"nonce":     u64(o.Nonce),
		"expiry":    u64(o.Expiry),
	})
}

// CancelTypedDataOf returns the eth_signTypedData_v4 request for a cancel.
func (d Domain) CancelTypedDataOf(c *Cancel) TypedData {
	return d.typedData("Cancel", fieldsCancel, map[string]any{
		"trader":  addr(c.Trader),
		"orderId": b32(c.OrderID),
		"nonce":   u64(c.Nonce),
		"expiry":  u64(c.Expiry),
	})
}

// CancelAllTypedDataOf returns the eth_signTypedData_v4 request for a
// cancel-all.
func (d Domain) CancelAllTypedDataOf(c *CancelAll) TypedData {
	return d.typedData("CancelAll", fieldsCancelAll, map[string]any{
		"trader": addr(c.Trader),
		"market": c.Market,
		"nonce":  u64(c.Nonce),
		"expiry": u64(c.Expiry),
	})
}

// WithdrawTypedDataOf returns the eth_signTypedData_v4 request for a
// withdrawal request.
func (d Domain) WithdrawTypedDataOf(w *Withdraw) TypedData {
	return d.typedData("Withdraw", fieldsWithdraw, map[string]any{
		"trader":    addr(w.Trader),
		"token":     w.Token,
		"amount":    u64(w.Amount),
		"recipient": addr(w.Recipient),
		"nonce":     u64(w.Nonce),
		"expiry":    u64(w.Expiry),
	})
}

// OrderTypedData returns the eth_signTypedData_v4 JSON for one order: pass
// it to a wallet (or ethers' signTypedData without EIP712Domain) and the
// signature it returns is over d.Digest(o).
func OrderTypedData(d Domain, o *Order) ([]byte, error) {
	return json.Marshal(d.OrderTypedDataOf(o))
}

// CancelTypedData is OrderTypedData for a cancel.
func CancelTypedData(d Domain, c *Cancel) ([]byte, error) {
	return json.Marshal(d.CancelTypedDataOf(c))
}

// CancelAllTypedData is OrderTypedData for a cancel-all.
func CancelAllTypedData(d Domain, c *CancelAll) ([]byte, error) {
	return json.Marshal(d.CancelAllTypedDataOf(c))
}

// WithdrawTypedData is OrderTypedData for a withdrawal request.
func WithdrawTypedData(d Domain, w *Withdraw) ([]byte, error) {
	return json.Marshal(d.WithdrawTypedDataOf(w))
}
