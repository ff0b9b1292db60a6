// Package replicated is the replicated legacy orderbook that tutorial steps
// 3 and 4 share (the tutorial's step 3): an order is checked and sent to
// the sequencer as a batch; every instance applies the finalized batches
// in their global order, checking every order again itself, so instances
// that follow the same app compute the same book and balances. This is the
// deterministic core: no clock, no network.
package replicated

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// OrderPayload is one order inside a batch, exactly as step 3 sends it:
// the tutorial's order_payload with the id every instance recomputes (the
// EIP-191 hash of the signed text) instead of a random uuid, amounts as
// exact JSON numbers (a decimal string is read too). A batch is a JSON list
// of them. Step 3 and step 4 instances following the same app apply the
// same batches by the same rules, so they hold the same book.
type OrderPayload struct {
	ID         string          `json:"id"`
	User       string          `json:"user"`
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   json.RawMessage `json:"quantity"`
	Price      json.RawMessage `json:"price"`
	Signature  string          `json:"signature"`
}

// SentMessage is the answer's message to an order sent to the sequencer
// (steps 3 and 4): the seed's "Order sent to consensus layer", saying what a
// learner needs to know next.
const SentMessage = "Order sent to consensus layer (the sequencer): not applied yet; every instance applies it " +
	"once the sequencer finalizes its batch, usually within a second (GET /orders, GET /balance)"

// Bounds of what one instance keeps and accepts.
const (
	// UsedSignaturesMax bounds the replay-protection memory, as in step 2.
	// Past it, orders are refused identically on every instance (they all
	// see the same sequence) rather than a signature being forgotten.
	UsedSignaturesMax = 1 << 20
	// OutcomesMax bounds the remembered outcomes of orders; the oldest are
	// forgotten first.
	OutcomesMax = 100_000
)

// PayloadOf writes an order as it travels in a batch.
func PayloadOf(o tut.OrderIn, sigHex string) OrderPayload {
	return OrderPayload{ID: o.ID, User: o.Account, OrderType: o.Side, BaseToken: o.Base,
		QuoteToken: o.Quote, Quantity: json.RawMessage(amount.Format(o.Qty)), Price: json.RawMessage(amount.Format(o.Price)),
		Signature: sigHex}
}

// DecodeBatch reads a batch body: a JSON list of order payloads, by step
// 3's rule (json.Unmarshal: unknown fields ignored, trailing data
// refused), so that every tutorial instance skips exactly the same
// batches. Its size is bounded by the sequencer's batch bound (1 MiB).
func DecodeBatch(body []byte) ([]OrderPayload, error) {
	var ops []OrderPayload
	if err := json.Unmarshal(body, &ops); err != nil {
		return nil, fmt.Errorf("not a JSON list of orders: %w", err)
	}
	return ops, nil
}

// CheckedOrder is an order whose fields and signature were checked.
type CheckedOrder struct {
	Order  tut.OrderIn
	SigKey [32]byte // keccak256(r‖s): the same signature with v 0/1 or 27/28
	Text   string
}

// CheckOrder validates an order's fields and its legacy signature: the
// checks every instance runs on every order of a batch it applies (it
// trusts no other instance's checks).
func CheckOrder(user, side, base, quote string, qty, price uint64, sigHex string) (*CheckedOrder, *tut.HTTPError) {
	if !strings.HasPrefix(user, "0x") || !common.IsHexAddress(user) {
		return nil, tut.BadRequest("field \"sender\": %q is not a 0x-prefixed 20-byte hex address", user)
	}
	if e := tut.Side(side); e != nil {
		return nil, e
	}
	if e := tut.Token("base_token", base); e != nil {
		return nil, e
	}
	if e := tut.Token("quote_token", quote); e != nil {
		return nil, e
	}
	if err := legacy.CheckExact(qty); err != nil {
		return nil, tut.BadRequest("field \"quantity\": %v", err)
	}
	if err := legacy.CheckExact(price); err != nil {
		return nil, tut.BadRequest("field \"price\": %v", err)
	}
	if sigHex == "" {
		return nil, tut.BadRequest("field \"signature\" is required")
	}
	sig, err := ethsig.ParseHex(sigHex)
	if err != nil {
		return nil, tut.BadRequest("field \"signature\": %v", err)
	}
	text := legacy.Message(side, qty, price, base, quote)
	signer, err := legacy.Recover(text, sig)
	sender := common.HexToAddress(user)
	if err != nil || signer != sender {
		return nil, &tut.HTTPError{Status: http.StatusUnauthorized,
			Msg: fmt.Sprintf("invalid signature: it is not the sender's signature of %q", text)}
	}
	id := legacy.Hash(text)
	return &CheckedOrder{
		Order:  tut.OrderIn{ID: "0x" + common.Bytes2Hex(id[:]), Account: sender.Hex(), Side: side, Base: base, Quote: quote, Qty: qty, Price: price},
		SigKey: eip712.Keccak256(sig[:64]),
		Text:   text,
	}, nil
}

// Outcome is what happened to an order when its batch was applied.
type Outcome struct {
	ID     string      `json:"-"`      // the payload's id, as sent
	Status string      `json:"status"` // "open" | "partially_filled" | "filled" | "rejected"
	Reason string      `json:"reason,omitempty"`
	Index  uint64      `json:"index"`
	Placed *tut.Placed `json:"placed,omitempty"`
}

// BalanceKey names one balance: an account's holding of a token.
type BalanceKey struct{ Account, Token string }

// Ledger is the replicated state of one instance: the book, the used
// signatures, the applied index and the orders' outcomes. Safe for
// concurrent use; Apply must be called with batches in index order.
type Ledger struct {
	mu       sync.Mutex
	book     *tut.Book
	used     map[[32]byte]struct{}
	applied  uint64
	outcomes map[string]Outcome
	order    []string  // outcome ids, oldest first
	changed  chan bool // closed and replaced when a batch is applied
	// afterBatch, if set, runs at the end of every applied batch, before
	// the applied index moves, with mu held.
	afterBatch func(index uint64, touched map[BalanceKey]bool)
}

// NewLedger returns a ledger with the genesis balances credited.
// afterBatch, if not nil, is called at the end of every applied batch with
// the balances its orders may have changed, under the ledger's lock and
// before the new index is visible to State or Read.
func NewLedger(genesis []tut.Funding, afterBatch func(index uint64, touched map[BalanceKey]bool)) (*Ledger, error) {
	book, err := tut.NewBook(genesis)
	if err != nil {
		return nil, err
	}
	return &Ledger{book: book, used: map[[32]byte]struct{}{}, outcomes: map[string]Outcome{},
		changed: make(chan bool), afterBatch: afterBatch}, nil
}

// Book is the ledger's orderbook, for reading (balances, open orders).
func (l *Ledger) Book() *tut.Book { return l.book }

// Apply applies the finalized batch at index (which must be applied+1):
// every order is checked again and placed, or rejected with a reason. A
// malformed batch is skipped whole (its decoding error is returned); the
// index advances either way. Nothing in a batch stops the loop.
func (l *Ledger) Apply(index uint64, body []byte) ([]Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index != l.applied+1 {
		// The SDK hands batches out verified, contiguous and in order.
		panic(fmt.Sprintf("replicated: batch %d applied after %d", index, l.applied))
	}
	ops, decodeErr := DecodeBatch(body)
	touched := map[BalanceKey]bool{}
	var results []Outcome
	for _, op := range ops {
		res := l.applyOrder(op, index, touched)
		results = append(results, res)
		if op.ID == "" || len(op.ID) > 66 {
			continue
		}
		if _, seen := l.outcomes[op.ID]; !seen {
			l.order = append(l.order, op.ID)
		}
		l.outcomes[op.ID] = res
		if len(l.order) > OutcomesMax {
			delete(l.outcomes, l.order[0])
			l.order = l.order[1:]
		}
	}
	if l.afterBatch != nil {
		l.afterBatch(index, touched)
	}
	l.applied = index
	close(l.changed)
	l.changed = make(chan bool)
	return results, decodeErr
}

func (l *Ledger) applyOrder(op OrderPayload, index uint64, touched map[BalanceKey]bool) Outcome {
	reject := func(format string, args ...any) Outcome {
		return Outcome{ID: op.ID, Status: "rejected", Reason: fmt.Sprintf(format, args...), Index: index}
	}
	qty, e := tut.PositiveAmount("quantity", tut.AmountField(op.Quantity))
	if e != nil {
		return reject("%s", e.Msg)
	}
	price, e := tut.PositiveAmount("price", tut.AmountField(op.Price))
	if e != nil {
		return reject("%s", e.Msg)
	}
	ck, e := CheckOrder(op.User, op.OrderType, op.BaseToken, op.QuoteToken, qty, price, op.Signature)
	if e != nil {
		return reject("%s", e.Msg)
	}
	if ck.Order.ID != op.ID {
		return reject("id %q is not the hash of the signed text", op.ID)
	}
	if _, dup := l.used[ck.SigKey]; dup {
		return reject("signature already used")
	}
	if len(l.used) >= UsedSignaturesMax {
		return reject("replay-protection memory is full")
	}
	var placed *tut.Placed
	l.book.Lock(func(lk *tut.Locked) { placed, e = lk.Place(ck.Order) })
	if e != nil {
		return reject("%s", e.Msg)
	}
	l.used[ck.SigKey] = struct{}{}
	o := ck.Order
	accounts := []string{o.Account}
	for _, f := range placed.Fills {
		accounts = append(accounts, f.Counterparty)
	}
	for _, acct := range accounts {
		touched[BalanceKey{acct, o.Base}] = true
		touched[BalanceKey{acct, o.Quote}] = true
	}
	return Outcome{ID: op.ID, Status: placed.Status, Index: index, Placed: placed}
}

// State returns the applied index and a channel closed at the next one.
func (l *Ledger) State() (uint64, <-chan bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied, l.changed
}

// Read runs fn with the applied index, under the ledger's lock: what fn
// reads of state kept by afterBatch is as of that index.
func (l *Ledger) Read(fn func(applied uint64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.applied)
}

// OutcomeOf returns an applied order's outcome.
func (l *Ledger) OutcomeOf(id string) (Outcome, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.outcomes[id]
	return o, ok
}

// SignatureUsed reports whether a signature already placed an order.
func (l *Ledger) SignatureUsed(k [32]byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.used[k]
	return ok
}
