package replica

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"slices"
)

// ledgerSnapshot is everything a restart needs to continue from an applied
// index: the replicated state (the matcher's canonical snapshot, replay
// protection, withdrawals) and the read models (records, trades). Balance
// history is not kept: after a restart GET /balance?index= answers from the
// snapshot's index on.
//
// The encoding (gob) is private to one replica's data directory; what
// replicas compare is the state digest, not these bytes.
type ledgerSnapshot struct {
	Version         int
	Engine          []byte
	Nonces          []nonceEntry
	Legacy          [][32]byte
	WithdrawalsHash [32]byte
	Withdrawals     uint64
	GenesisHash     [32]byte
	Index           uint64
	Chain           [32]byte
	Timestamp       uint64
	RejectedOps     uint64
	RejectedBatches uint64
	// Records holds every record; ClosedQueue the ids of closed ones in the
	// order they closed (what eviction follows).
	Records     []record
	ClosedQueue [][32]byte
	Trades      []trade
	// rejectedQueue holds the ledger's rejection windows, captured apart
	// and written after ClosedQueue in the same section by encode:
	// restore tells them apart by the records' status, so the layout is
	// the same as before rejections had their own bounds.
	rejectedQueue [][32]byte
	// Bulk holds Nonces, Legacy, Records, ClosedQueue and Trades encoded
	// by appendBulk (versions 2 and 3; version 1 had them in their own
	// fields, encoded by gob, and is still read). Version 3 adds the
	// records' nonce, sequence, cancelled count and authenticity.
	Bulk []byte
}

const ledgerSnapshotVersion = 3

// MarshalSnapshot encodes the ledger for a restart.
func (l *Ledger) MarshalSnapshot() ([]byte, error) {
	s, err := l.captureSnapshot()
	if err != nil {
		return nil, err
	}
	return s.encode()
}

// captureSnapshot takes what a snapshot holds, cheaply: the matcher's
// canonical bytes, and the rest as values or as slices the ledger never
// modifies in place afterwards (the nonce order is rebuilt, never edited;
// trades and the closed queue are only appended to, and compacted into
// new arrays). So the capture stays exact while the ledger applies more
// batches, and encode can run outside the apply loop.
func (l *Ledger) captureSnapshot() (*ledgerSnapshot, error) {
	eng, err := l.eng.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s := &ledgerSnapshot{
		Version: ledgerSnapshotVersion, Engine: eng, Nonces: l.nonces.sorted(),
		WithdrawalsHash: l.withdrawalsHash, Withdrawals: l.withdrawals, GenesisHash: l.genesisHash,
		Index: l.index, Chain: l.chain, Timestamp: l.timestamp,
		RejectedOps: l.rejectedOps, RejectedBatches: l.rejectedBatches,
		ClosedQueue: slices.Clip(l.closedQueue[l.closedHead:]), Trades: slices.Clip(l.trades),
	}
	s.rejectedQueue = slices.Concat(l.rejected.kept(), l.forged.kept())
	s.Legacy = make([][32]byte, 0, len(l.legacyUsed))
	for id := range l.legacyUsed {
		s.Legacy = append(s.Legacy, id)
	}
	// Records are copied by value; their Fills slices are only appended
	// to (addFill), so the copies' views do not change either.
	s.Records = make([]record, 0, len(l.records))
	for _, r := range l.records {
		s.Records = append(s.Records, *r)
	}
	return s, nil
}

// encode sorts and encodes a captured snapshot. It reads only the capture,
// so it may run beside the apply loop.
func (s *ledgerSnapshot) encode() ([]byte, error) {
	// Sorted so equal ledgers give equal bytes (handy in tests; not a
	// contract); appendBulk orders the records.
	slices.SortFunc(s.Legacy, compare32)
	w := *s
	w.ClosedQueue = slices.Concat(s.ClosedQueue, s.rejectedQueue)
	w.Bulk = appendBulk(nil, &w)
	w.Nonces, w.Legacy, w.Records, w.ClosedQueue, w.Trades = nil, nil, nil, nil, nil
	var buf bytes.Buffer
	buf.Grow(len(w.Bulk) + len(w.Engine) + 512)
	if err := gob.NewEncoder(&buf).Encode(&w); err != nil {
		return nil, fmt.Errorf("encoding the ledger snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// RestoreLedger rebuilds a ledger from MarshalSnapshot's bytes.
func RestoreLedger(cfg LedgerConfig, dom *Domain, data []byte) (*Ledger, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	var s ledgerSnapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding the ledger snapshot: %w", err)
	}
	switch s.Version {
	case 1: // the bulk in gob fields
	case 2, ledgerSnapshotVersion:
		if len(s.Nonces)+len(s.Legacy)+len(s.Records)+len(s.ClosedQueue)+len(s.Trades) > 0 {
			return nil, fmt.Errorf("ledger snapshot: version %d with version 1 fields", s.Version)
		}
		if err := readBulk(s.Bulk, &s); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ledger snapshot version %d, this build reads 1 to %d", s.Version, ledgerSnapshotVersion)
	}
	l := newEmptyLedger(cfg, dom, s.Index)
	if err := l.eng.UnmarshalBinary(s.Engine); err != nil {
		return nil, fmt.Errorf("matcher snapshot: %w", err)
	}
	for _, e := range s.Nonces {
		k := nonceKey{e.Signer, e.Nonce}
		if l.nonces.has(k) {
			return nil, errors.New("ledger snapshot: a nonce appears twice")
		}
		l.nonces.add(k, e.Expiry)
	}
	for _, id := range s.Legacy {
		l.legacyUsed[id] = struct{}{}
	}
	l.withdrawalsHash, l.withdrawals, l.genesisHash = s.WithdrawalsHash, s.Withdrawals, s.GenesisHash
	l.index, l.chain, l.timestamp = s.Index, s.Chain, s.Timestamp
	l.rejectedOps, l.rejectedBatches = s.RejectedOps, s.RejectedBatches
	for i := range s.Records {
		r := s.Records[i]
		l.records[r.ID] = &r
	}
	for _, id := range s.ClosedQueue {
		r := l.records[id]
		switch {
		case r == nil:
			// Forgotten already (a per-trader bound): nothing to queue.
		case r.Status.rejected():
			w, _ := l.window(r.Status)
			w.ids = append(w.ids, id)
			w.live++
			if r.Status == stRejected {
				l.rejectedBy[r.Trader] = append(l.rejectedBy[r.Trader], id)
			}
		default:
			l.closedQueue = append(l.closedQueue, id)
		}
	}
	l.trades = s.Trades
	l.orders.rebuild(l.records)
	l.recordSeq = l.orders.lastSeq
	return l, nil
}
