// Package obapi holds the JSON shapes of the replica's HTTP API (DESIGN §5,
// docs/api.md). It is a leaf package: the replica serves these types and the
// client SDK encodes and decodes them, so neither imports the other.
//
// Conventions:
//   - Requests carry the signed message's fields under their EIP-712 names
//     (camelCase: orderType, orderId) plus "signature"; responses use
//     snake_case.
//   - Integers in requests (base units, nonces, expiries) are Number: a JSON
//     string or a JSON number, kept as text and parsed exactly (never through
//     a float64).
//   - Amounts in responses are decimal strings with 6 decimals at most
//     ("1.5"); fields ending in _units carry base units as decimal strings.
//   - Hashes, ids and signatures are 0x-prefixed lowercase hex; addresses
//     are EIP-55 checksummed.
//   - Every 4xx/5xx answer is Error.
package obapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
)

// Number is the text of a JSON number, accepted from either a JSON string
// ("1500000", "1.5") or a JSON number (1500000, 1.5). It is kept as text so
// the server parses it exactly (client/amount); it is written back as a JSON
// string, which every JSON library reads without loss.
type Number string

// UnmarshalJSON implements json.Unmarshaler.
func (n *Number) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("empty value")
	}
	switch {
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = Number(s)
		return nil
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		// encoding/json has already checked the token's syntax.
		*n = Number(b)
		return nil
	case string(b) == "null":
		// By encoding/json's convention null leaves the value alone.
		return nil
	}
	// An UnmarshalTypeError gets the field name added by encoding/json.
	kind := "value"
	switch b[0] {
	case 't', 'f':
		kind = "bool"
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[Number]()}
}

// MarshalJSON implements json.Marshaler: always a JSON string.
func (n Number) MarshalJSON() ([]byte, error) { return json.Marshal(string(n)) }

// Uint returns a Number holding v.
func Uint(v uint64) Number { return Number(strconv.FormatUint(v, 10)) }

// ---- Requests ----

// OrderRequest is an EIP-712 order (POST /order): the fields of
// Order(address trader,string market,string side,string orderType,
// uint256 quantity,uint256 price,uint64 nonce,uint64 expiry) and the
// trader's 65-byte signature over its digest. Quantity and Price are base
// units (integers); Expiry is unix seconds.
type OrderRequest struct {
	Trader    string `json:"trader"`
	Market    string `json:"market"`    // "ETH/USDT"
	Side      string `json:"side"`      // "buy" | "sell"
	OrderType string `json:"orderType"` // "limit" | "market" | "ioc" | "fok" | "post_only"
	Quantity  Number `json:"quantity"`
	Price     Number `json:"price"`
	Nonce     Number `json:"nonce"`
	Expiry    Number `json:"expiry"`
	Signature string `json:"signature"`
}

// LegacyOrderRequest is the tutorial's signed order (POST /order, DESIGN
// §3.2): decimal amounts, signed as the EIP-191 text
// "Order {order_type} {quantity} {base_token} at {price} {quote_token}".
type LegacyOrderRequest struct {
	Sender     string `json:"sender"`
	OrderType  string `json:"order_type"` // "buy" | "sell" (the side; legacy orders are limit orders)
	BaseToken  string `json:"base_token"`
	QuoteToken string `json:"quote_token"`
	Quantity   Number `json:"quantity"` // decimal, "1.5" or 1.5
	Price      Number `json:"price"`
	Signature  string `json:"signature"`
}

// CancelRequest is an EIP-712 Cancel (POST /cancel):
// Cancel(address trader,bytes32 orderId,uint64 nonce,uint64 expiry).
type CancelRequest struct {
	Trader    string `json:"trader"`
	OrderID   string `json:"orderId"`
	Nonce     Number `json:"nonce"`
	Expiry    Number `json:"expiry"`
	Signature string `json:"signature"`
}

// WithdrawRequest is an EIP-712 Withdraw (POST /withdraw):
// Withdraw(address trader,string token,uint256 amount,address recipient,
// uint64 nonce,uint64 expiry). Amount is base units.
type WithdrawRequest struct {
	Trader    string `json:"trader"`
	Token     string `json:"token"`
	Amount    Number `json:"amount"`
	Recipient string `json:"recipient"`
	Nonce     Number `json:"nonce"`
	Expiry    Number `json:"expiry"`
	Signature string `json:"signature"`
}

// DepositRequest credits an account (POST /deposit). It is signed by the
// cluster's bridge key (the cluster file's "bridge" address) over
// DepositDigest; (bridge, nonce) is used once, like a trader's nonce.
// Amount is base units.
type DepositRequest struct {
	Account   string `json:"account"`
	Token     string `json:"token"`
	Amount    Number `json:"amount"`
	Nonce     Number `json:"nonce"`
	Expiry    Number `json:"expiry"`
	Signature string `json:"signature"`
}

// ---- Answers to submissions ----

// Status values of an accepted submission and of orders.
const (
	StatusAccepted        = "accepted"         // taken by the replica and handed to the sequencer
	StatusPending         = "pending"          // accepted, not applied yet
	StatusOpen            = "open"             // resting, nothing filled
	StatusPartiallyFilled = "partially_filled" // resting, part filled
	StatusFilled          = "filled"
	StatusCancelled       = "cancelled"
	StatusRejected        = "rejected" // skipped when applied; Reason says why
	StatusApplied         = "applied"  // a cancel, withdraw or deposit that took effect
)

// OrderAccepted answers POST /order (without ?wait=finalized). OrderID is
// the EIP-712 digest (legacy: the EIP-191 hash of the signed text), known
// to the client before it submits. Status "accepted" (HTTP 200): a
// sequencer node took the order's batch; "pending" (HTTP 202): the replica
// holds the order and keeps sending it, but no node confirmed it in time,
// so its outcome is not known yet (Message says where to follow it).
type OrderAccepted struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"` // "accepted" | "pending"
	Message string `json:"message,omitempty"`
}

// OpAccepted answers POST /cancel, /withdraw and /deposit (without
// ?wait=finalized). ID is the operation's digest: for a withdraw, the
// withdrawal id a bridge pays out on.
type OpAccepted struct {
	ID      string `json:"id"`
	Status  string `json:"status"` // "accepted" | "pending" (as OrderAccepted)
	Message string `json:"message,omitempty"`
}

// OpResult is the outcome of any applied operation (GET /ops/{id}, and the
// answer to POST /cancel, /withdraw, /deposit with ?wait=finalized).
type OpResult struct {
	ID     string `json:"id"`
	Op     string `json:"op"`     // "order" | "legacy_order" | "cancel" | "cancel_all" | "withdraw" | "deposit"
	Status string `json:"status"` // "pending" | "applied" | "rejected" (orders: their order status)
	Reason string `json:"reason,omitempty"`
	// Cancelled is the number of orders an applied cancel_all cancelled
	// (absent for other operations).
	Cancelled *uint64 `json:"cancelled,omitempty"`
	// Index and Timestamp are the batch that carried the operation (zero
	// while pending).
	Index     uint64 `json:"index"`
	Timestamp uint64 `json:"timestamp"` // unix ms, the batch's
}

// ---- Reads ----

// Fill is one trade seen from one order.
type Fill struct {
	Trade    uint64 `json:"trade"` // the trade's sequence number
	Role     string `json:"role"`  // "maker" | "taker"
	Price    string `json:"price"`
	Quantity string `json:"quantity"`
	Quote    string `json:"quote"` // quote amount moved: floor(quantity × price)
	// Counterparty is the other order's id.
	Counterparty string `json:"counterparty"`
	Index        uint64 `json:"index"`
}

// Order is an order as the replica knows it (GET /orders, GET
// /orders/{id}, POST /order?wait=finalized).
type Order struct {
	OrderID   string `json:"order_id"`
	Op        string `json:"op"` // "order" | "legacy_order"
	Trader    string `json:"trader"`
	Market    string `json:"market"`
	Side      string `json:"side"`
	OrderType string `json:"order_type"`
	Quantity  string `json:"quantity"`
	Price     string `json:"price"`
	Filled    string `json:"filled"`
	Remaining string `json:"remaining"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	// Index and Timestamp are the batch that carried the order.
	Index     uint64 `json:"index"`
	Timestamp uint64 `json:"timestamp"`
	// Fills are the order's trades in order; at most FillsPerOrderMax are
	// kept, FillsDropped counts older ones dropped (Filled stays exact).
	Fills        []Fill `json:"fills"`
	FillsDropped uint64 `json:"fills_dropped,omitempty"`
}

// FillsPerOrderMax bounds the fills an order record keeps: a large resting
// order may be filled by any number of small takers.
const FillsPerOrderMax = 100

// Orders answers GET /orders: open orders in book order (markets by name,
// bids best first, then asks best first), or one trader's in acceptance
// order with ?trader=.
type Orders struct {
	Index  uint64  `json:"index"`
	Orders []Order `json:"orders"`
}

// Trade is one fill between a taker and a resting maker, at the maker's
// price.
type Trade struct {
	Seq        uint64 `json:"seq"`
	Market     string `json:"market"`
	Price      string `json:"price"`
	Quantity   string `json:"quantity"`
	Quote      string `json:"quote"`
	MakerOrder string `json:"maker_order"`
	TakerOrder string `json:"taker_order"`
	Maker      string `json:"maker"`
	Taker      string `json:"taker"`
	TakerSide  string `json:"taker_side"`
	Index      uint64 `json:"index"`
	Timestamp  uint64 `json:"timestamp"`
}

// Trades answers GET /trades?market=&after=&limit=: trades with Seq > after
// in order. Next is the after= of the following page.
type Trades struct {
	Index  uint64  `json:"index"`
	Trades []Trade `json:"trades"`
	Next   uint64  `json:"next"`
}

// TradesPageMax is the most trades one GET /trades answer carries.
const TradesPageMax = 1000

// Level is one aggregated price level.
type Level struct {
	Price    string `json:"price"`
	Quantity string `json:"quantity"`
	Orders   int    `json:"orders"`
}

// Depth answers GET /depth?market=&levels=.
type Depth struct {
	Market string  `json:"market"`
	Index  uint64  `json:"index"`
	Bids   []Level `json:"bids"` // best (highest) first
	Asks   []Level `json:"asks"` // best (lowest) first
}

// Balance answers GET /balance?address=&token=[&index=N]. Signature is this
// replica's BLS signature over the EIP-712 digest of
// Balance(string app,address account,string token,uint256 balance,
// uint64 index) with Balance = available + reserved in base units.
type Balance struct {
	Address      string `json:"address"`
	Token        string `json:"token"`
	Balance      string `json:"balance"`       // decimal
	BalanceUnits string `json:"balance_units"` // base units
	Index        uint64 `json:"index"`
	Replica      string `json:"replica"`
	Signature    string `json:"signature"`
}

// Withdrawal answers GET /withdrawals/{id}: a recorded withdrawal and this
// replica's BLS signature over the EIP-712 digest of
// Withdrawal(string app,bytes32 id,address trader,string token,
// uint256 amount,address recipient,uint64 index), where Index is the batch
// that recorded it (the same on every replica).
type Withdrawal struct {
	App         string `json:"app"`
	ID          string `json:"id"`
	Trader      string `json:"trader"`
	Token       string `json:"token"`
	Amount      string `json:"amount"`
	AmountUnits string `json:"amount_units"`
	Recipient   string `json:"recipient"`
	Index       uint64 `json:"index"`
	Timestamp   uint64 `json:"timestamp"`
	Replica     string `json:"replica"`
	Signature   string `json:"signature"`
}

// State answers GET /state.
type State struct {
	App     string `json:"app"`
	Replica string `json:"replica"`
	// AppliedIndex is the last applied batch; ChainingHash its chaining
	// hash (DESIGN §4) and Timestamp its time (unix ms).
	AppliedIndex uint64 `json:"applied_index"`
	ChainingHash string `json:"chaining_hash"`
	Timestamp    uint64 `json:"timestamp"`
	// StateDigest commits to the whole replicated state after
	// AppliedIndex: equal on every honest replica at the same index.
	StateDigest string `json:"state_digest"`
	// MatcherDigest is the orderbook part of StateDigest.
	MatcherDigest string `json:"matcher_digest"`
	OpenOrders    int    `json:"open_orders"`
	Trades        uint64 `json:"trades"`
	// Pending counts operations this replica accepted that are not
	// applied yet.
	Pending int `json:"pending"`
	// Attested is the latest index this replica attested (signed its
	// state digest at, GET /attestation); 0 before the first.
	Attested uint64 `json:"attested"`
	// Diverged is set when a quorum of the other replicas attested
	// another state digest at an index than this replica computed: it
	// then answers no signed read (503) and rebuilds its state.
	Diverged *Divergence `json:"diverged,omitempty"`
	// Rebuilding is set while the replica rebuilds its state from the
	// sequencer's verified history: it then answers no signed read (503).
	Rebuilding *Rebuilding `json:"rebuilding,omitempty"`
}

// Rebuilding is a replica's progress in rebuilding its state from genesis
// (docs/verification.md, "While a replica rebuilds").
type Rebuilding struct {
	// Reason is why the state is rebuilt: the damage found in the stored
	// state, or the divergence from a quorum's state digest.
	Reason string `json:"reason"`
	// TargetIndex is the sequencer's finalized head when the rebuild
	// began: the rebuild ends once it is applied. 0 until it is known.
	TargetIndex uint64 `json:"target_index"`
	// AttestIndex, when set, is the attestation index at which a quorum of
	// replicas must also have attested this replica's state digest (or at
	// a later one) before it signs again.
	AttestIndex uint64 `json:"attest_index,omitempty"`
}

// Divergence is a replica's state digest disagreeing with a quorum's.
type Divergence struct {
	Index  uint64 `json:"index"`
	Mine   string `json:"mine"`
	Quorum string `json:"quorum"`
	// Signers are the replicas that attested Quorum.
	Signers []string `json:"signers"`
}

// Attestation is GET /attestation?index=N: the replica's BLS signature
// (hex) over the EIP-712 digest of State(string app,uint64 index,
// bytes32 stateDigest), the state digest it computed after applying
// index (docs/verification.md).
type Attestation struct {
	App         string `json:"app"`
	Index       uint64 `json:"index"`
	StateDigest string `json:"state_digest"`
	Replica     string `json:"replica"`
	Signature   string `json:"signature"`
}

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Error string `json:"error"`
}
