package obapi

import "encoding/json"

// Live feed (GET /ws on every replica, DESIGN §8). A client sends
// WSRequest messages; the server sends WSMessage messages, in index order
// per subscription, and {"error": "..."} (Error) for a request it refuses.

// Channels of the live feed.
const (
	ChannelBook     = "book"     // a market's depth: a snapshot, then changed levels
	ChannelTrades   = "trades"   // a market's fills
	ChannelOrders   = "orders"   // one trader's order updates
	ChannelFinality = "finality" // each finalized batch applied, with its proof's signers
)

// WSRequest is what a client sends: {"op":"subscribe","channel":"book",
// "market":"ETH/USDT"}. Market is required for book and trades, Trader for
// orders. After (trades only) resumes: the fills of batches after that
// index are sent first, as far back as the replica's trade history goes.
type WSRequest struct {
	Op      string `json:"op"` // "subscribe" or "unsubscribe"
	Channel string `json:"channel"`
	Market  string `json:"market,omitempty"`
	Trader  string `json:"trader,omitempty"`
	After   uint64 `json:"after,omitempty"`
}

// WSMessage is one message of a subscription. Index is the applied batch
// index the data is as of; Data is a WSBook, WSTrades, WSOrders or
// WSFinality by Channel.
type WSMessage struct {
	Channel string          `json:"channel"`
	Index   uint64          `json:"index"`
	Data    json.RawMessage `json:"data"`
}

// WSBook is a book message. The first of a subscription is a snapshot of
// the top levels; each later one lists only the levels that changed, with
// their new total quantity ("0": the level is gone).
type WSBook struct {
	Market   string  `json:"market"`
	Snapshot bool    `json:"snapshot"`
	Bids     []Level `json:"bids"`
	Asks     []Level `json:"asks"`
}

// WSTrades is a trades message: the first of a subscription (snapshot)
// holds recent fills (or those after the request's After), later ones
// the fills of newly applied batches, oldest first.
type WSTrades struct {
	Market   string  `json:"market"`
	Snapshot bool    `json:"snapshot"`
	Trades   []Trade `json:"trades"`
}

// WSOrders is an orders message: the first (snapshot) holds the trader's
// orders as of Index, later ones the orders a batch changed.
type WSOrders struct {
	Trader   string  `json:"trader"`
	Snapshot bool    `json:"snapshot"`
	Orders   []Order `json:"orders"`
}

// WSFinality is a finality message: one per applied batch. The proof is
// the node quorum's finality signature the replica verified; it covers
// every batch up to ProofIndex (the last batch of the page it came with).
// View and Signers are empty when the batch was replayed from the
// replica's own log (the first message of a subscription, or after a
// restart).
type WSFinality struct {
	Index        uint64   `json:"index"`
	ChainingHash string   `json:"chaining_hash"`
	Timestamp    uint64   `json:"timestamp"`
	Operations   int      `json:"operations"`
	ProofIndex   uint64   `json:"proof_index,omitempty"`
	View         uint64   `json:"view,omitempty"`
	Signers      []string `json:"signers,omitempty"`
}
