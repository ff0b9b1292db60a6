package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/matcher"
)

// ExpiryAheadMaxSec is how far past the batch time an operation's expiry
// may lie (DESIGN §3.1: one hour). It bounds how long a nonce is remembered.
const ExpiryAheadMaxSec = 3600

// LedgerConfig holds the knobs of the replicated state. The first three
// change which operations are accepted, so every replica of a cluster must
// use the same values; the others bound read models only.
type LedgerConfig struct {
	Matcher matcher.Config
	// LegacyOrdersMax bounds the legacy orders ever applied. Legacy orders
	// have no nonce and no expiry, so each one's id is remembered forever
	// to refuse a replay; the bound keeps that memory finite. Past it,
	// legacy orders are rejected (the form is for the tutorial only).
	LegacyOrdersMax int
	// RecordsMax bounds the closed order records and the records of other
	// operations kept for GET /orders/{id} and GET /ops/{id}; the oldest
	// closed ones are forgotten first. Open orders are always kept.
	// Rejected operations do not count here: anyone can have any number
	// of operations rejected, and they must not push accepted history out.
	RecordsMax int
	// RejectedRecordsMax bounds the records of authentic rejected
	// operations (their signature verified): a short window of the latest
	// ones, kept apart from accepted history.
	RejectedRecordsMax int
	// RejectedPerTraderMax bounds the rejected records of one trader
	// within that window, so one trader's rejections do not push out
	// everyone else's.
	RejectedPerTraderMax int
	// ForgedRecordsMax bounds the records of operations rejected because
	// their signature did not verify: they name no trader that can be
	// held to them, so they get a window of their own, and a flood of
	// them pushes out only each other.
	ForgedRecordsMax int
	// TradesMax bounds the trades kept for GET /trades.
	TradesMax int
	// HistoryIndexes is how many applied indexes GET /balance?index= can
	// look back.
	HistoryIndexes uint64
}

// DefaultLedgerConfig returns the production configuration.
func DefaultLedgerConfig() LedgerConfig {
	return LedgerConfig{
		Matcher:         matcher.DefaultConfig(),
		LegacyOrdersMax: 100_000,
		RecordsMax:      100_000,
		// About 3 MB of records at most; enough to tell a client why its
		// operation failed for minutes even under a flood of rejections.
		RejectedRecordsMax:   10_000,
		RejectedPerTraderMax: 100,
		ForgedRecordsMax:     10_000,
		TradesMax:            100_000,
		HistoryIndexes:       10_000,
	}
}

// ValidateBasic checks the configuration on its own.
func (c LedgerConfig) ValidateBasic() error {
	if err := c.Matcher.ValidateBasic(); err != nil {
		return err
	}
	switch {
	case c.LegacyOrdersMax < 0:
		return errors.New("LegacyOrdersMax must not be negative")
	case c.RecordsMax < 1:
		return errors.New("RecordsMax must be at least 1")
	case c.RejectedRecordsMax < 1:
		return errors.New("RejectedRecordsMax must be at least 1")
	case c.RejectedPerTraderMax < 1:
		return errors.New("RejectedPerTraderMax must be at least 1")
	case c.ForgedRecordsMax < 1:
		return errors.New("ForgedRecordsMax must be at least 1")
	case c.TradesMax < 1:
		return errors.New("TradesMax must be at least 1")
	case c.HistoryIndexes < 1:
		return errors.New("HistoryIndexes must be at least 1")
	}
	return nil
}

// Batch is one finalized batch, already verified by whoever fetched it
// (hash, chaining hash, finality proof).
type Batch struct {
	Index        uint64
	Timestamp    uint64 // unix milliseconds, the leader's stamp
	Body         []byte
	ChainingHash [32]byte
	// Proof is the finality proof the batch came with (the last batch of
	// a fetched page; nil otherwise, and for batches replayed from the
	// store). The ledger ignores it; the live feed shows it.
	Proof *BatchProof
}

// BatchProof is what the live feed shows of a verified finality proof.
type BatchProof struct {
	Index   uint64
	View    uint64
	Signers []string
}

// opStatus is where an operation (record) stands.
type opStatus uint8

const (
	stOpen opStatus = iota + 1
	stPartiallyFilled
	stFilled
	stCancelled
	stRejected
	stApplied // a cancel, withdraw or deposit that took effect
	// stRejectedForged: rejected because its signature did not verify, so
	// the trader it names is not known to have sent it. Reads say
	// "rejected"; it is kept apart only for the per-trader bound.
	stRejectedForged
)

func (s opStatus) String() string {
	switch s {
	case stOpen:
		return obapi.StatusOpen
	case stPartiallyFilled:
		return obapi.StatusPartiallyFilled
	case stFilled:
		return obapi.StatusFilled
	case stCancelled:
		return obapi.StatusCancelled
	case stRejected, stRejectedForged:
		return obapi.StatusRejected
	case stApplied:
		return obapi.StatusApplied
	}
	return "unknown"
}

func (s opStatus) closed() bool { return s != stOpen && s != stPartiallyFilled }

func (s opStatus) rejected() bool { return s == stRejected || s == stRejectedForged }

func statusOf(s matcher.Status) opStatus {
	switch s {
	case matcher.StatusOpen:
		return stOpen
	case matcher.StatusPartiallyFilled:
		return stPartiallyFilled
	case matcher.StatusFilled:
		return stFilled
	}
	return stCancelled
}

// fill is one trade seen from one order.
type fill struct {
	Trade        uint64
	Maker        bool
	Price        uint64
	Quantity     uint64
	Quote        uint64
	Counterparty [32]byte
	Index        uint64
}

// record is what the replica remembers about one operation, for reads.
type record struct {
	ID     [32]byte
	Kind   OpKind
	Trader common.Address // the account acted for
	// Orders.
	Market       string
	Side         matcher.Side
	OrderType    matcher.OrderType
	Quantity     uint64
	Price        uint64
	Filled       uint64
	Fills        []fill
	FillsDropped uint64
	// Others.
	Token  string
	Amount uint64

	Status    opStatus
	Reason    string
	Index     uint64
	Timestamp uint64

	// Nonce is the operation's nonce (zero for legacy orders and before
	// snapshot version 3); with Trader it names an order before it is
	// sequenced (GET /orders/by-nonce).
	Nonce uint64
	// Seq numbers records in the order they were made: the order of
	// GET /orders?trader= history.
	Seq uint64
	// Cancelled is how many orders an applied cancel_all cancelled.
	Cancelled uint64
	// Authentic is set when the operation's signature verified: only
	// those are in the history index (orderIndex).
	Authentic bool
}

// trade is one trade as kept for reads.
type trade struct {
	Seq          uint64
	Market       string
	Price        uint64
	Quantity     uint64
	Quote        uint64
	MakerOrder   [32]byte
	TakerOrder   [32]byte
	Maker, Taker string
	TakerSide    matcher.Side
	Index        uint64
	Timestamp    uint64
}

// WithdrawalRecord is a withdrawal recorded by the batch at Index, what a
// bridge pays out on a proof of.
type WithdrawalRecord struct {
	ID        [32]byte
	Trader    common.Address
	Token     string
	Amount    uint64
	Recipient common.Address
	Index     uint64
	Timestamp uint64
}

// OpOutcome is what happened to one operation of a batch.
type OpOutcome struct {
	ID   [32]byte // zero when the entry did not decode far enough to have one
	Kind OpKind   // zero when unknown
	// Trader is the operation's trader (zero when unknown); for logs.
	Trader common.Address
	// Status and Reason are the record's ("rejected" with a reason, or the
	// order's status, or "applied").
	Status string
	Reason string
	// Authentic is false when the entry's signature did not verify: then
	// the outcome says nothing about the real operation with this id
	// (anyone can submit garbage under someone's id).
	Authentic bool
}

// Applied is what one batch did.
type Applied struct {
	Index        uint64
	Timestamp    uint64
	ChainingHash [32]byte
	// BatchError is set when the whole body was skipped (not a JSON array,
	// not UTF-8, too large).
	BatchError  string
	Outcomes    []OpOutcome
	Withdrawals []WithdrawalRecord
}

// Ledger is the replicated state of one replica: the matcher plus replay
// protection and withdrawals (all in the state digest), and bounded read
// models derived from the same log (records, trades, balance history).
//
// It is a deterministic core: ApplyBatch is a pure function of the state
// and the batch (time is the batch timestamp), with no I/O, clock or
// goroutines of its own; VerifyBatch is the one parallel step, and its
// result does not depend on scheduling. It is not safe for concurrent use:
// the replica serialises it behind a lock.
type Ledger struct {
	cfg LedgerConfig
	dom *Domain

	eng    *matcher.Engine
	nonces *nonceSet
	// legacyUsed holds every applied legacy order id (see
	// LegacyOrdersMax).
	legacyUsed map[[32]byte]struct{}
	// withdrawalsHash chains every recorded withdrawal:
	// h' = keccak256(h ‖ Withdrawal struct hash), so the digest commits to
	// all of them without keeping them in memory.
	withdrawalsHash [32]byte
	withdrawals     uint64
	genesisHash     [32]byte

	index     uint64
	chain     [32]byte
	timestamp uint64

	rejectedOps     uint64
	rejectedBatches uint64

	// Read models.
	records map[[32]byte]*record
	// closedQueue lists ids in the order their records closed; the oldest
	// are forgotten past RecordsMax. Rejections go to their own windows
	// instead: rejected (RejectedRecordsMax, and per trader in rejectedBy,
	// RejectedPerTraderMax) and forged (ForgedRecordsMax).
	closedQueue []([32]byte)
	closedHead  int
	rejected    rejectionWindow
	forged      rejectionWindow
	rejectedBy  map[common.Address][][32]byte
	trades      []trade // the last TradesMax trades, oldest first
	history     *balanceHistory
	orders      orderIndex // orders by trader and by (trader, nonce)
	recordSeq   uint64     // Seq of the last record made

	// Scratch reused across operations.
	placeRes matcher.PlaceResult
	deltas   map[balanceKey]int64

	// The digest cache is written by readers (GET /state under the
	// replica's read lock), so it has its own lock.
	digestMu      sync.Mutex
	digestAt      uint64
	digestValid   bool
	digest        [32]byte
	matcherDigest [32]byte
}

// GenesisBalance is one initial balance (--genesis FILE).
type GenesisBalance struct {
	Address string       `json:"address"`
	Token   string       `json:"token"`
	Amount  obapi.Number `json:"amount"` // decimal, like "1000" or "0.5"
}

// Genesis is the genesis file: {"balances":[{"address","token","amount"}]}.
type Genesis struct {
	Balances []GenesisBalance `json:"balances"`
}

// NewLedger returns the state at index 0: the genesis balances credited.
func NewLedger(cfg LedgerConfig, dom *Domain, g *Genesis) (*Ledger, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	l := newEmptyLedger(cfg, dom, 0)
	if g != nil {
		for i, b := range g.Balances {
			addr, err := parseAddress("address", b.Address)
			if err != nil {
				return nil, fmt.Errorf("genesis balance #%d: %w", i+1, err)
			}
			tok, err := parseToken("token", b.Token)
			if err != nil {
				return nil, fmt.Errorf("genesis balance #%d: %w", i+1, err)
			}
			amt, err := amount.ParsePositive(string(b.Amount))
			if err != nil {
				return nil, fmt.Errorf("genesis balance #%d (%s %s): amount: %w", i+1, addr.Hex(), tok, err)
			}
			if err := l.eng.Deposit(addr.Hex(), tok, amt); err != nil {
				return nil, fmt.Errorf("genesis balance #%d (%s %s): %w", i+1, addr.Hex(), tok, err)
			}
		}
	}
	// The matcher's canonical digest of the genesis balances identifies
	// the genesis whatever order or file layout listed them.
	l.genesisHash = l.eng.Digest()
	return l, nil
}

func newEmptyLedger(cfg LedgerConfig, dom *Domain, start uint64) *Ledger {
	return &Ledger{
		cfg:        cfg,
		dom:        dom,
		eng:        matcher.New(cfg.Matcher),
		nonces:     newNonceSet(),
		legacyUsed: map[[32]byte]struct{}{},
		records:    map[[32]byte]*record{},
		rejectedBy: map[common.Address][][32]byte{},
		history:    newBalanceHistory(cfg.HistoryIndexes, start),
		orders:     newOrderIndex(),
		deltas:     map[balanceKey]int64{},
	}
}

// Index returns the last applied index, its chaining hash and timestamp.
func (l *Ledger) Index() (index uint64, chain [32]byte, timestampMs uint64) {
	return l.index, l.chain, l.timestamp
}

// GenesisHash identifies the genesis the ledger started from.
func (l *Ledger) GenesisHash() [32]byte { return l.genesisHash }

// Engine exposes the matcher for reads. Callers must not mutate it.
func (l *Ledger) Engine() *matcher.Engine { return l.eng }

// VerifyBatch checks the signatures of a decoded batch's operations on up to
// workers goroutines (0: one per CPU) and returns one error per entry (nil:
// verified; entries that did not decode get nil and are rejected for their
// decode error). Verification is the costly part of applying (one
// secp256k1 recovery per operation); the result is the same whatever the
// scheduling.
func VerifyBatch(ops []BatchOp, workers int) []error {
	errs := make([]error, len(ops))
	parallel(len(ops), workers, func(i int) {
		if ops[i].Op != nil {
			errs[i] = ops[i].Op.Verify()
		}
	})
	return errs
}

// VerifiedFunc reports whether an operation's signature is already known
// to verify: Verify is a pure function of (ID, Signer, Sig), so a caller
// that verified exactly that triple before (the replica that accepted the
// operation) may answer true and spare the recovery. It must answer false
// when unsure; it never turns a failing signature into a passing one as
// long as it only answers true for triples that passed Verify.
type VerifiedFunc func(op *Op) bool

// DecodeAndVerifyBatch is DecodeBatch then VerifyBatch with each entry's
// decoding done in the worker pool too (decoding costs a fifth of a
// verification). Same results as the sequential pair. verified (nil: none)
// names operations whose signature already passed Verify; they are not
// recovered again, and their result is the same nil Verify would give.
func DecodeAndVerifyBatch(d *Domain, body []byte, workers int, verified VerifiedFunc) ([]BatchOp, []error, error) {
	raws, err := splitBatch(body)
	if err != nil {
		return nil, nil, err
	}
	ops := make([]BatchOp, len(raws))
	errs := make([]error, len(raws))
	parallel(len(raws), workers, func(i int) {
		ops[i] = decodeEntry(d, raws[i])
		if op := ops[i].Op; op != nil && (verified == nil || !verified(op)) {
			errs[i] = op.Verify()
		}
	})
	return ops, errs, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines, in chunks.
func parallel(n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	const chunk = 16
	if chunks := (n + chunk - 1) / chunk; workers > chunks {
		workers = chunks
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := int(next.Add(chunk)) - chunk
				if s >= n {
					return
				}
				for i := s; i < s+chunk && i < n; i++ {
					fn(i)
				}
			}
		}()
	}
	wg.Wait()
}

// ApplyBatch applies one finalized batch: its decoded entries and their
// signature check results (VerifyBatch). Invariant: b.Index is the next
// index. Nothing in a batch stops the loop: undecodable and invalid
// entries are recorded as rejected, identically on every replica.
func (l *Ledger) ApplyBatch(b Batch, ops []BatchOp, batchErr error, sigErrs []error) *Applied {
	if b.Index != l.index+1 {
		panic(fmt.Sprintf("replica: batch %d applied after %d", b.Index, l.index))
	}
	l.index, l.chain, l.timestamp = b.Index, b.ChainingHash, b.Timestamp
	nowSec := b.Timestamp / 1000
	l.nonces.prune(nowSec)
	a := &Applied{Index: b.Index, Timestamp: b.Timestamp, ChainingHash: b.ChainingHash}
	if batchErr != nil {
		l.rejectedBatches++
		a.BatchError = batchErr.Error()
	}
	clear(l.deltas)
	for i := range ops {
		a.Outcomes = append(a.Outcomes, l.applyOne(&ops[i], sigErrs[i], nowSec, a))
	}
	l.recordHistory()
	l.history.advance(l.index)
	l.evictRecords()
	return a
}

func (l *Ledger) applyOne(e *BatchOp, sigErr error, nowSec uint64, a *Applied) OpOutcome {
	if e.Op == nil {
		l.rejectedOps++
		out := OpOutcome{ID: e.ID, Status: obapi.StatusRejected, Reason: e.Err.Error()}
		return out
	}
	op := e.Op
	if sigErr != nil {
		return l.reject(op, sigErr.Error(), false)
	}
	if op.HasNonce() {
		if op.Expiry < nowSec {
			return l.reject(op, fmt.Sprintf("expired: expiry %d is before the batch time %d", op.Expiry, nowSec), true)
		}
		if op.Expiry-nowSec > ExpiryAheadMaxSec {
			return l.reject(op, fmt.Sprintf("expiry %d is more than %d s after the batch time %d", op.Expiry, ExpiryAheadMaxSec, nowSec), true)
		}
		k := nonceKey{op.Signer, op.Nonce}
		if l.nonces.has(k) {
			return l.reject(op, fmt.Sprintf("nonce %d of %s already used", op.Nonce, op.Signer.Hex()), true)
		}
		// A verified, timely operation uses its nonce whatever happens
		// next, as a failed Ethereum transaction uses its nonce: a
		// rejected order cannot come back later when funds arrive.
		l.nonces.add(k, op.Expiry)
	} else {
		if _, used := l.legacyUsed[op.ID]; used {
			return l.reject(op, "legacy order already used (a legacy signature is accepted once)", true)
		}
		if len(l.legacyUsed) >= l.cfg.LegacyOrdersMax {
			return l.reject(op, fmt.Sprintf("legacy order limit reached (%d); use EIP-712 orders", l.cfg.LegacyOrdersMax), true)
		}
		// The id is marked used only once the order is placed
		// (applyOrder): an order rejected at apply must not burn it.
	}
	switch op.Kind {
	case OpOrder, OpLegacyOrder:
		return l.applyOrder(op)
	case OpCancel:
		info, err := l.eng.Cancel(accountHex(op.Signer), hexID(op.CancelID))
		if err != nil {
			return l.reject(op, "cancel: "+err.Error(), true)
		}
		if r := l.records[op.CancelID]; r != nil {
			r.Status, r.Reason = stCancelled, "cancelled by its owner"
			r.Filled = info.Filled
			l.closeRecord(r)
		}
		return l.applied(op)
	case OpCancelAll:
		cancelled := l.eng.CancelAll(accountHex(op.Signer), op.Market)
		for _, info := range cancelled {
			id, _ := parseHash32("order", info.ID)
			if r := l.records[id]; r != nil {
				r.Status, r.Reason = stCancelled, "cancelled by its owner's cancel-all "+op.IDHex()
				r.Filled = info.Filled
				l.closeRecord(r)
			}
		}
		out := l.applied(op)
		l.records[op.ID].Cancelled = uint64(len(cancelled))
		return out
	case OpWithdraw:
		if err := l.eng.Withdraw(accountHex(op.Signer), op.Token, op.Amount); err != nil {
			return l.reject(op, "withdraw: "+err.Error(), true)
		}
		l.delta(accountHex(op.Signer), op.Token, -int64(op.Amount))
		w := WithdrawalRecord{ID: op.ID, Trader: op.Signer, Token: op.Token, Amount: op.Amount,
			Recipient: op.Recipient, Index: l.index, Timestamp: l.timestamp}
		sh := l.withdrawalMessage(&w).StructHash()
		l.withdrawalsHash = eip712.Keccak256(l.withdrawalsHash[:], sh[:])
		l.withdrawals++
		a.Withdrawals = append(a.Withdrawals, w)
		return l.applied(op)
	case OpDeposit:
		if err := l.eng.Deposit(accountHex(op.Account), op.Token, op.Amount); err != nil {
			return l.reject(op, "deposit: "+err.Error(), true)
		}
		l.delta(accountHex(op.Account), op.Token, int64(op.Amount))
		return l.applied(op)
	}
	panic("replica: operation of unknown kind")
}

func (l *Ledger) withdrawalMessage(w *WithdrawalRecord) *eip712.Withdrawal {
	return &eip712.Withdrawal{App: l.dom.App, ID: w.ID, Trader: w.Trader, Token: w.Token,
		Amount: w.Amount, Recipient: w.Recipient, Index: w.Index}
}

func (l *Ledger) applyOrder(op *Op) OpOutcome {
	res := &l.placeRes
	if err := l.eng.PlaceInto(op.MatcherOrder(), res); err != nil {
		return l.reject(op, err.Error(), true)
	}
	if op.Kind == OpLegacyOrder {
		l.legacyUsed[op.ID] = struct{}{}
	}
	r := l.newRecord(op, statusOf(res.Status), "", true)
	r.Filled = res.Filled
	switch {
	case res.RemainderDust:
		r.Reason = op.OrderType.String() + " order: remainder cancelled, too small to pay one quote unit (dust)"
	case res.Status == matcher.StatusCancelled:
		r.Reason = op.OrderType.String() + " order: unfilled remainder cancelled"
	}
	base, quote, _ := strings.Cut(op.Market, "/")
	for i := range res.Trades {
		t := &res.Trades[i]
		makerID, _ := parseHash32("maker", t.MakerOrder)
		tr := trade{Seq: t.Seq, Market: t.Market, Price: t.Price, Quantity: t.Quantity, Quote: t.Quote,
			MakerOrder: makerID, TakerOrder: op.ID, Maker: t.Maker, Taker: t.Taker, TakerSide: t.TakerSide,
			Index: l.index, Timestamp: l.timestamp}
		l.addTrade(tr)
		addFill(r, fill{Trade: t.Seq, Maker: false, Price: t.Price, Quantity: t.Quantity, Quote: t.Quote, Counterparty: makerID, Index: l.index})
		if m := l.records[makerID]; m != nil {
			addFill(m, fill{Trade: t.Seq, Maker: true, Price: t.Price, Quantity: t.Quantity, Quote: t.Quote, Counterparty: op.ID, Index: l.index})
			m.Filled += t.Quantity
			if t.MakerRemaining == 0 {
				m.Status = stFilled
				l.closeRecord(m)
			} else {
				m.Status = stPartiallyFilled
			}
		}
		buyer, seller := t.Taker, t.Maker
		if t.TakerSide == matcher.Sell {
			buyer, seller = seller, buyer
		}
		q, qq := int64(t.Quantity), int64(t.Quote)
		l.delta(buyer, base, q)
		l.delta(buyer, quote, -qq)
		l.delta(seller, base, -q)
		l.delta(seller, quote, qq)
	}
	l.cancelRecords(res.SelfTradeCancelled, "self-trade prevention: cancelled by an incoming order of the same trader")
	l.cancelRecords(res.DustCancelled, "remainder cancelled after a fill: too small to pay one quote unit at the order's price")
	if r.Status.closed() {
		l.closeRecord(r)
	}
	return OpOutcome{ID: op.ID, Kind: op.Kind, Trader: op.Trader(), Status: r.Status.String(), Reason: r.Reason, Authentic: true}
}

// cancelRecords closes the records of resting orders the matcher cancelled
// while placing another order, with the reason.
func (l *Ledger) cancelRecords(cancelled []matcher.OrderInfo, reason string) {
	for _, c := range cancelled {
		id, _ := parseHash32("order", c.ID)
		if m := l.records[id]; m != nil {
			m.Status, m.Reason = stCancelled, reason
			l.closeRecord(m)
		}
	}
}

// addFill appends a fill, dropping the oldest past FillsPerOrderMax. It
// never writes over a kept fill (reslicing instead of shifting in place),
// because a snapshot being encoded may share the slice (captureSnapshot).
func addFill(r *record, f fill) {
	if len(r.Fills) >= obapi.FillsPerOrderMax {
		r.Fills = r.Fills[1:]
		r.FillsDropped++
	}
	r.Fills = append(r.Fills, f)
}

func (l *Ledger) delta(acct, tok string, d int64) {
	l.deltas[balanceKey{acct, tok}] += d
}

// recordHistory turns the batch's balance deltas into history entries.
// Totals (available + reserved) only change by exact transfers: trades move
// quantity and quote between buyer and seller (reservations and refunds
// move funds between available and reserved of one account), deposits
// add, withdrawals subtract. So before = after - delta.
func (l *Ledger) recordHistory() {
	for k, d := range l.deltas {
		if d == 0 {
			continue
		}
		after := l.eng.Balance(k.Account, k.Token).Total()
		before := uint64(int64(after) - d)
		l.history.record(k, l.index, before, after)
	}
}

func (l *Ledger) addTrade(t trade) {
	if len(l.trades) >= l.cfg.TradesMax {
		// Drop the oldest quarter at once so the copy is amortised. Into
		// a new array: a snapshot being encoded may share the old one
		// (captureSnapshot).
		drop := max(1, l.cfg.TradesMax/4)
		l.trades = append(make([]trade, 0, l.cfg.TradesMax), l.trades[drop:]...)
	}
	l.trades = append(l.trades, t)
}

// newRecord makes the record of an operation; authentic ones (signature
// verified) are indexed for history reads.
func (l *Ledger) newRecord(op *Op, st opStatus, reason string, authentic bool) *record {
	l.recordSeq++
	r := &record{ID: op.ID, Kind: op.Kind, Trader: op.Trader(), Market: op.Market, Side: op.Side,
		OrderType: op.OrderType, Quantity: op.Quantity, Price: op.Price, Token: op.Token, Amount: op.Amount,
		Status: st, Reason: reason, Index: l.index, Timestamp: l.timestamp, Nonce: op.Nonce, Seq: l.recordSeq,
		Authentic: authentic}
	l.records[op.ID] = r
	l.orders.add(r)
	return r
}

// reject records a rejected operation. A rejection never replaces an
// existing record: a replayed or forged copy of an operation must not hide
// what happened to the real one.
func (l *Ledger) reject(op *Op, reason string, authentic bool) OpOutcome {
	l.rejectedOps++
	if _, exists := l.records[op.ID]; !exists {
		st := stRejected
		if !authentic {
			st = stRejectedForged
		}
		r := l.newRecord(op, st, reason, authentic)
		l.queueRejected(r)
	}
	return OpOutcome{ID: op.ID, Kind: op.Kind, Trader: op.Trader(), Status: obapi.StatusRejected, Reason: reason, Authentic: authentic}
}

func (l *Ledger) applied(op *Op) OpOutcome {
	r := l.newRecord(op, stApplied, "", true)
	l.closeRecord(r)
	return OpOutcome{ID: op.ID, Kind: op.Kind, Trader: op.Trader(), Status: obapi.StatusApplied, Authentic: true}
}

func (l *Ledger) closeRecord(r *record) { l.closedQueue = append(l.closedQueue, r.ID) }

// rejectionWindow keeps the ids of the latest rejections, oldest first.
//
// Why it stays bounded: at most its bound of rejected records live at once
// (live), and ids, which may also hold ids forgotten by the per-trader
// bound, are compacted to the live ones when they grow past twice it.
type rejectionWindow struct {
	ids  [][32]byte
	head int
	live int // records of ids[head:] still kept
}

func (w *rejectionWindow) kept() [][32]byte { return slices.Clip(w.ids[w.head:]) }

// window returns the rejection window a rejected status belongs to.
func (l *Ledger) window(st opStatus) (*rejectionWindow, int) {
	if st == stRejectedForged {
		return &l.forged, l.cfg.ForgedRecordsMax
	}
	return &l.rejected, l.cfg.RejectedRecordsMax
}

// queueRejected puts a rejection in its window, and an authentic one also
// in its trader's queue, forgetting that trader's oldest past
// RejectedPerTraderMax.
func (l *Ledger) queueRejected(r *record) {
	w, _ := l.window(r.Status)
	w.ids = append(w.ids, r.ID)
	w.live++
	if r.Status != stRejected {
		return
	}
	q := append(l.rejectedBy[r.Trader], r.ID)
	if len(q) > l.cfg.RejectedPerTraderMax {
		l.forgetRejected(q[0])
		q = q[1:]
	}
	l.rejectedBy[r.Trader] = q
}

// forgetRejected drops a rejection's record, unless the id now names an
// accepted operation (a forged copy rejected first, then the real one).
func (l *Ledger) forgetRejected(id [32]byte) {
	if r := l.records[id]; r != nil && r.Status.rejected() {
		w, _ := l.window(r.Status)
		w.live--
		delete(l.records, id)
		l.orders.forget(r, l.records)
	}
}

// evictRejected forgets the oldest rejections of a window past its bound.
func (l *Ledger) evictRejected(w *rejectionWindow, max int) {
	for w.live > max && w.head < len(w.ids) {
		id := w.ids[w.head]
		w.head++
		r := l.records[id]
		if r == nil || !r.Status.rejected() {
			continue // forgotten already, or now an accepted operation
		}
		if r.Status == stRejected {
			// Its trader's queue is in the same order: this id is the
			// oldest of that trader's that is still kept.
			if q := l.rejectedBy[r.Trader]; len(q) > 0 && q[0] == id {
				if len(q) == 1 {
					delete(l.rejectedBy, r.Trader)
				} else {
					l.rejectedBy[r.Trader] = q[1:]
				}
			}
		}
		l.forgetRejected(id)
	}
	if n := len(w.ids) - w.head; n > 2*max || w.head > 4096 && w.head > len(w.ids)/2 {
		// Into a new array: a snapshot being encoded may share the old.
		kept := make([][32]byte, 0, min(n, max)+1)
		for _, id := range w.ids[w.head:] {
			if r := l.records[id]; r != nil && r.Status.rejected() {
				kept = append(kept, id)
			}
		}
		w.ids, w.head, w.live = kept, 0, len(kept)
	}
}

// evictRecords forgets the oldest closed records past RecordsMax and the
// oldest rejections past their windows' bounds.
func (l *Ledger) evictRecords() {
	l.evictRejected(&l.rejected, l.cfg.RejectedRecordsMax)
	l.evictRejected(&l.forged, l.cfg.ForgedRecordsMax)
	for len(l.closedQueue)-l.closedHead > l.cfg.RecordsMax {
		// The entry is left in place (not zeroed): a snapshot being
		// encoded may share the queue (captureSnapshot).
		id := l.closedQueue[l.closedHead]
		l.closedHead++
		// The record may have been replaced since (a forged rejection
		// followed by the real operation): only forget closed ones.
		if r := l.records[id]; r != nil && r.Status.closed() {
			delete(l.records, id)
			l.orders.forget(r, l.records)
		}
	}
	if l.closedHead > 4096 && l.closedHead > len(l.closedQueue)/2 {
		l.closedQueue = append([]([32]byte)(nil), l.closedQueue[l.closedHead:]...)
		l.closedHead = 0
	}
}

// Digest returns the state digest at the applied index:
//
//	keccak256("seqbook-state-v1" ‖ matcherDigest ‖ noncesDigest ‖
//	          legacyDigest ‖ withdrawalsHash ‖ uint64be(withdrawals) ‖ genesisHash)
//
// It walks the whole state, so it is computed on demand and cached until
// the next batch.
func (l *Ledger) Digest() (state, matcherDigest [32]byte) {
	l.digestMu.Lock()
	defer l.digestMu.Unlock()
	if l.digestValid && l.digestAt == l.index {
		return l.digest, l.matcherDigest
	}
	md := l.eng.Digest()
	l.matcherDigest = md
	nd := l.nonces.digest()
	ld := l.legacyDigest()
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], l.withdrawals)
	l.digest = eip712.Keccak256([]byte("seqbook-state-v1"), md[:], nd[:], ld[:], l.withdrawalsHash[:], w[:], l.genesisHash[:])
	l.digestAt, l.digestValid = l.index, true
	return l.digest, md
}

func (l *Ledger) legacyDigest() [32]byte {
	ids := make([][32]byte, 0, len(l.legacyUsed))
	for id := range l.legacyUsed {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [32]byte) int { return compare32(a, b) })
	b := make([]byte, 0, 8+32*len(ids))
	b = binary.BigEndian.AppendUint64(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return eip712.Keccak256(b)
}

func compare32(a, b [32]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// ---- Reads (callers hold the replica's read lock) ----

// BalanceAt returns available+reserved of (account, token) at applied index
// n (n == the applied index: the current value).
func (l *Ledger) BalanceAt(account, token string, n uint64) (uint64, error) {
	cur := l.eng.Balance(account, token).Total()
	if n == l.index {
		return cur, nil
	}
	return l.history.at(balanceKey{account, token}, n, l.index, cur)
}

// Record returns the record of an operation.
func (l *Ledger) record(id [32]byte) (*record, bool) { r, ok := l.records[id]; return r, ok }

// NonceUsed reports whether (signer, nonce) is already used.
func (l *Ledger) NonceUsed(signer common.Address, nonce uint64) bool {
	return l.nonces.has(nonceKey{signer, nonce})
}

// alreadyApplied reports whether op can no longer apply: its nonce (or
// legacy id) is used.
func (l *Ledger) alreadyApplied(op *Op) bool {
	if op.HasNonce() {
		return l.NonceUsed(op.Signer, op.Nonce)
	}
	return l.LegacyUsed(op.ID)
}

// LegacyUsed reports whether a legacy order id was already applied.
func (l *Ledger) LegacyUsed(id [32]byte) bool { _, ok := l.legacyUsed[id]; return ok }

// tradesAfter returns up to limit trades with Seq > after, of market if not
// empty and with trader as maker or taker if not empty, and the after= of
// the next page.
func (l *Ledger) tradesAfter(market, trader string, after uint64, limit int) ([]trade, uint64) {
	i, _ := slices.BinarySearchFunc(l.trades, after+1, func(t trade, seq uint64) int {
		switch {
		case t.Seq < seq:
			return -1
		case t.Seq > seq:
			return 1
		}
		return 0
	})
	var out []trade
	next := after
	for ; i < len(l.trades) && len(out) < limit; i++ {
		t := l.trades[i]
		next = t.Seq
		if (market == "" || t.Market == market) && (trader == "" || t.Maker == trader || t.Taker == trader) {
			out = append(out, t)
		}
	}
	return out, next
}
