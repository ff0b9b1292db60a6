package main

import (
	"encoding/json"
	"errors"
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

// The replicated part of the service (the tutorial's step 3): an order is
// checked and sent to the sequencer as a batch; every instance applies the
// finalized batches in their global order, checking every order again
// itself, so instances that follow the same app compute the same book and
// balances. This file is the deterministic core: no clock, no network.

// orderPayload is one order inside a batch, exactly as step 3 sends it:
// the tutorial's order_payload with the id every instance recomputes (the
// EIP-191 hash of the signed text), amounts as exact JSON numbers (a
// decimal string is read too). A batch is a JSON list of them. Step 3 and
// step 4 instances following the same app apply the same batches by the
// same rules, so they hold the same book.
type orderPayload struct {
	ID         string          `json:"id"`
	User       string          `json:"user"`
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   json.RawMessage `json:"quantity"`
	Price      json.RawMessage `json:"price"`
	Signature  string          `json:"signature"`
}

// Bounds of what one instance keeps and accepts.
const (
	// usedSignaturesMax bounds the replay-protection memory, as in step 2;
	// when full, orders are refused (never forgotten signatures).
	usedSignaturesMax = 1 << 20
	// outcomesMax bounds the remembered outcomes of orders (for
	// ?wait=applied); the oldest are forgotten first.
	outcomesMax = 100_000
	// historyPerKeyMax bounds the balance history kept per (account,
	// token): enough for every instance to answer for an index a quorum
	// applied moments ago; older questions get 410.
	historyPerKeyMax = 256
)

// checkedOrder is an order whose fields and signature were checked.
type checkedOrder struct {
	order  tut.OrderIn
	sigKey [32]byte // keccak256(r‖s): the same signature with v 0/1 or 27/28
	text   string
}

// checkOrder validates an order's fields and its legacy signature: the
// same checks at submission (the HTTP edge) and when a batch is applied
// (every instance trusts no other).
func checkOrder(user, side, base, quote string, qty, price uint64, sigHex string) (*checkedOrder, *tut.HTTPError) {
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
	return &checkedOrder{
		order:  tut.OrderIn{ID: "0x" + common.Bytes2Hex(id[:]), Account: sender.Hex(), Side: side, Base: base, Quote: quote, Qty: qty, Price: price},
		sigKey: eip712.Keccak256(sig[:64]),
		text:   text,
	}, nil
}

// payloadOf writes a checked order as it travels in a batch.
func payloadOf(o *checkedOrder, sigHex string) orderPayload {
	return orderPayload{ID: o.order.ID, User: o.order.Account, OrderType: o.order.Side, BaseToken: o.order.Base,
		QuoteToken: o.order.Quote, Quantity: json.RawMessage(amount.Format(o.order.Qty)), Price: json.RawMessage(amount.Format(o.order.Price)),
		Signature: sigHex}
}

// decodeBatch reads a batch body: a JSON list of order payloads, by step
// 3's rule (json.Unmarshal: unknown fields ignored, trailing data
// refused), so that every tutorial instance skips exactly the same
// batches. Its size is bounded by the sequencer's batch bound (1 MiB).
func decodeBatch(body []byte) ([]orderPayload, error) {
	var ops []orderPayload
	if err := json.Unmarshal(body, &ops); err != nil {
		return nil, fmt.Errorf("not a JSON list of orders: %w", err)
	}
	return ops, nil
}

// outcome is what happened to an order when its batch was applied.
type outcome struct {
	Status string      `json:"status"` // "open" | "partially_filled" | "filled" | "rejected"
	Reason string      `json:"reason,omitempty"`
	Index  uint64      `json:"index"`
	Placed *tut.Placed `json:"placed,omitempty"`
}

type balanceKey struct{ account, token string }

// balanceHistory is one (account, token)'s balance after each batch that
// changed it, oldest first. Before the first entry the balance was zero,
// unless entries were dropped (truncated): then earlier indexes are gone.
type balanceHistory struct {
	entries   []historyEntry
	truncated bool
}

type historyEntry struct {
	index uint64
	value uint64
}

// errIndexGone: the balance history no longer reaches that far back.
var errIndexGone = errors.New("balance history does not reach back to that index")

// ledger is the replicated state of one instance: the book, the used
// signatures, the applied index and the balance history. Safe for
// concurrent use; apply must be called with batches in index order.
type ledger struct {
	mu       sync.Mutex
	book     *tut.Book
	used     map[[32]byte]struct{}
	applied  uint64
	history  map[balanceKey]*balanceHistory
	outcomes map[string]outcome
	order    []string  // outcome ids, oldest first
	changed  chan bool // closed and replaced when a batch is applied
}

func newLedger(genesis []tut.Funding) (*ledger, error) {
	book, err := tut.NewBook(genesis)
	if err != nil {
		return nil, err
	}
	l := &ledger{book: book, used: map[[32]byte]struct{}{}, history: map[balanceKey]*balanceHistory{},
		outcomes: map[string]outcome{}, changed: make(chan bool)}
	for _, f := range genesis {
		l.record(balanceKey{f.Account, f.Token}, 0)
	}
	return l, nil
}

// record appends the current balance of k at index to its history if it
// changed. Caller holds l.mu.
func (l *ledger) record(k balanceKey, index uint64) {
	v := l.book.Balance(k.account, k.token)
	h := l.history[k]
	if h == nil {
		h = &balanceHistory{}
		l.history[k] = h
	}
	if n := len(h.entries); n > 0 && h.entries[n-1].value == v {
		return
	}
	if len(h.entries) == historyPerKeyMax {
		h.entries = append(h.entries[:0], h.entries[1:]...)
		h.truncated = true
	}
	h.entries = append(h.entries, historyEntry{index, v})
}

// apply applies the finalized batch at index (which must be applied+1):
// every order is checked again and placed, or rejected with a reason. A
// malformed batch is skipped whole; the index advances either way.
func (l *ledger) apply(index uint64, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index != l.applied+1 {
		// The SDK hands batches out verified, contiguous and in order.
		panic(fmt.Sprintf("step4: batch %d applied after %d", index, l.applied))
	}
	ops, err := decodeBatch(body)
	if err != nil {
		ops = nil
	}
	touched := map[balanceKey]bool{}
	for _, op := range ops {
		res := l.applyOrder(op, index, touched)
		if op.ID == "" || len(op.ID) > 66 {
			continue
		}
		if _, seen := l.outcomes[op.ID]; !seen {
			l.order = append(l.order, op.ID)
		}
		l.outcomes[op.ID] = res
		if len(l.order) > outcomesMax {
			delete(l.outcomes, l.order[0])
			l.order = l.order[1:]
		}
	}
	for k := range touched {
		l.record(k, index)
	}
	l.applied = index
	close(l.changed)
	l.changed = make(chan bool)
}

func (l *ledger) applyOrder(op orderPayload, index uint64, touched map[balanceKey]bool) outcome {
	reject := func(format string, args ...any) outcome {
		return outcome{Status: "rejected", Reason: fmt.Sprintf(format, args...), Index: index}
	}
	qty, e := tut.PositiveAmount("quantity", tut.AmountField(op.Quantity))
	if e != nil {
		return reject("%s", e.Msg)
	}
	price, e := tut.PositiveAmount("price", tut.AmountField(op.Price))
	if e != nil {
		return reject("%s", e.Msg)
	}
	ck, e := checkOrder(op.User, op.OrderType, op.BaseToken, op.QuoteToken, qty, price, op.Signature)
	if e != nil {
		return reject("%s", e.Msg)
	}
	if ck.order.ID != op.ID {
		return reject("id %q is not the hash of the signed text", op.ID)
	}
	if _, dup := l.used[ck.sigKey]; dup {
		return reject("signature already used")
	}
	if len(l.used) >= usedSignaturesMax {
		return reject("replay-protection memory is full")
	}
	var placed *tut.Placed
	l.book.Lock(func(lk *tut.Locked) { placed, e = lk.Place(ck.order) })
	if e != nil {
		return reject("%s", e.Msg)
	}
	l.used[ck.sigKey] = struct{}{}
	o := ck.order
	for _, acct := range append([]string{o.Account}, counterparties(placed)...) {
		touched[balanceKey{acct, o.Base}] = true
		touched[balanceKey{acct, o.Quote}] = true
	}
	return outcome{Status: placed.Status, Index: index, Placed: placed}
}

func counterparties(p *tut.Placed) []string {
	var out []string
	for _, f := range p.Fills {
		out = append(out, f.Counterparty)
	}
	return out
}

// balanceAt returns account's balance of token as of index (at most the
// applied index).
func (l *ledger) balanceAt(account, token string, index uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index > l.applied {
		return 0, fmt.Errorf("index %d is not applied yet (applied %d)", index, l.applied)
	}
	h := l.history[balanceKey{account, token}]
	if h == nil {
		return 0, nil
	}
	for i := len(h.entries) - 1; i >= 0; i-- {
		if h.entries[i].index <= index {
			return h.entries[i].value, nil
		}
	}
	if h.truncated {
		return 0, errIndexGone
	}
	return 0, nil
}

// state returns the applied index and a channel closed at the next one.
func (l *ledger) state() (uint64, <-chan bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied, l.changed
}

// outcomeOf returns an applied order's outcome.
func (l *ledger) outcomeOf(id string) (outcome, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.outcomes[id]
	return o, ok
}

// signatureUsed reports whether a signature already placed an order.
func (l *ledger) signatureUsed(k [32]byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.used[k]
	return ok
}
