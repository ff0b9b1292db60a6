package main

import (
	"errors"
	"fmt"

	"github.com/seqbook/seqbook/tutorial/internal/replicated"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// What step 4 adds to step 3's replicated orderbook (package replicated):
// the balance history that lets every instance sign its balance as of one
// applied index. This file is the deterministic core: no clock, no network.

// historyPerKeyMax bounds the balance history kept per (account, token):
// enough for every instance to answer for an index a quorum applied
// moments ago; older questions get 410.
const historyPerKeyMax = 256

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

// ledger is the replicated state of one instance (step 3's) plus the
// balance history. Safe for concurrent use; apply must be called with
// batches in index order.
type ledger struct {
	*replicated.Ledger
	// history is written by the replicated ledger's afterBatch hook and
	// read through its Read, both under its lock.
	history map[replicated.BalanceKey]*balanceHistory
}

func newLedger(genesis []tut.Funding) (*ledger, error) {
	l := &ledger{history: map[replicated.BalanceKey]*balanceHistory{}}
	rl, err := replicated.NewLedger(genesis, func(index uint64, touched map[replicated.BalanceKey]bool) {
		for k := range touched {
			l.record(k, index)
		}
	})
	if err != nil {
		return nil, err
	}
	l.Ledger = rl
	for _, f := range genesis {
		l.record(replicated.BalanceKey{Account: f.Account, Token: f.Token}, 0)
	}
	return l, nil
}

// record appends the current balance of k at index to its history if it
// changed. Caller holds the replicated ledger's lock (or is newLedger).
func (l *ledger) record(k replicated.BalanceKey, index uint64) {
	v := l.Book().Balance(k.Account, k.Token)
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

// apply applies the finalized batch at index (which must be applied+1),
// recording the balances it changed. A malformed batch is skipped whole;
// the index advances either way.
func (l *ledger) apply(index uint64, body []byte) {
	_, _ = l.Apply(index, body)
}

// balanceAt returns account's balance of token as of index (at most the
// applied index).
func (l *ledger) balanceAt(account, token string, index uint64) (v uint64, err error) {
	l.Read(func(applied uint64) {
		if index > applied {
			err = fmt.Errorf("index %d is not applied yet (applied %d)", index, applied)
			return
		}
		h := l.history[replicated.BalanceKey{Account: account, Token: token}]
		if h == nil {
			return
		}
		for i := len(h.entries) - 1; i >= 0; i-- {
			if h.entries[i].index <= index {
				v = h.entries[i].value
				return
			}
		}
		if h.truncated {
			err = errIndexGone
		}
	})
	return v, err
}
