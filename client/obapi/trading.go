package obapi

import "encoding/json"

// The shapes of the trading API of DESIGN §8 (docs/api.md): batch
// placement, cancel-all, history and reference data.

// CancelAllRequest is an EIP-712 CancelAll (POST /cancel_all):
// CancelAll(address trader,string market,uint64 nonce,uint64 expiry).
// Market is "BASE/QUOTE", or empty to cancel in every market.
type CancelAllRequest struct {
	Trader    string `json:"trader"`
	Market    string `json:"market"`
	Nonce     Number `json:"nonce"`
	Expiry    Number `json:"expiry"`
	Signature string `json:"signature"`
}

// OrdersBatchMax is the most orders one POST /orders request carries.
const OrdersBatchMax = 100

// OrdersBatchRequest is the body of POST /orders: each entry is one signed
// order request exactly as POST /order takes it (OrderRequest, or the
// legacy form).
type OrdersBatchRequest struct {
	Orders []json.RawMessage `json:"orders"`
}

// OrderResult is one entry of an OrdersBatchResult, at the position of its
// order in the request. Exactly one of (OrderID with Status) and Error is
// set: Error says why the order was refused (Code is the HTTP status a
// single POST /order would have answered). Status "pending" means the
// order's outcome is not known yet (Message says how to follow it); with
// ?wait=finalized, Order is the applied order, and an order not applied in
// time is "pending".
type OrderResult struct {
	OrderID string `json:"order_id,omitempty"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
	Code    int    `json:"code,omitempty"`
	Order   *Order `json:"order,omitempty"`
}

// OrdersBatchResult answers POST /orders: one result per order, in request
// order.
type OrdersBatchResult struct {
	Results []OrderResult `json:"results"`
}

// OrderHistory answers GET /orders?trader=&status=: the trader's orders,
// newest first. Next is the before= of the following page, empty on the
// last one.
type OrderHistory struct {
	Index  uint64  `json:"index"`
	Orders []Order `json:"orders"`
	Next   string  `json:"next,omitempty"`
}

// History status filters of GET /orders?status=.
const (
	HistoryOpen      = "open" // open or partially filled
	HistoryFilled    = "filled"
	HistoryCancelled = "cancelled"
	HistoryRejected  = "rejected"
	HistoryAll       = "all"
)

// TokenBalance is one token of an account (GET /balances).
type TokenBalance struct {
	Token          string `json:"token"`
	Available      string `json:"available"`
	Reserved       string `json:"reserved"` // held by open orders
	AvailableUnits string `json:"available_units"`
	ReservedUnits  string `json:"reserved_units"`
}

// Balances answers GET /balances?address=: every token the account holds
// (non-zero), sorted by token name, at the applied index. Unlike GET
// /balance it is not signed.
type Balances struct {
	Address  string         `json:"address"`
	Index    uint64         `json:"index"`
	Balances []TokenBalance `json:"balances"`
}

// MarketInfo is one market's reference data (GET /markets). Prices are
// empty when there is none (no bid, no ask, no trade yet).
type MarketInfo struct {
	Market    string `json:"market"`
	BestBid   string `json:"best_bid"`
	BestAsk   string `json:"best_ask"`
	LastPrice string `json:"last_price"`
	// Volume24h and QuoteVolume24h sum the trades of batches stamped
	// within 24 hours before the last applied batch's time (the batch
	// time, never the wall clock): base and quote amounts.
	Volume24h      string `json:"volume_24h"`
	QuoteVolume24h string `json:"quote_volume_24h"`
	Trades24h      int    `json:"trades_24h"`
	// VolumeComplete is false when the replica no longer keeps every
	// trade of the window (it keeps the last TradesMax): the volume is
	// then a lower bound.
	VolumeComplete bool `json:"volume_complete"`
}

// Markets answers GET /markets: every market that ever had an accepted
// order, by name. Timestamp is the last applied batch's time (unix ms).
type Markets struct {
	Index     uint64       `json:"index"`
	Timestamp uint64       `json:"timestamp"`
	Markets   []MarketInfo `json:"markets"`
}
