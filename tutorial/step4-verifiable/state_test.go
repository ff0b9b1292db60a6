package main

import (
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/tutorial/internal/replicated"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

var (
	user1 = keys.TutorialUser1Address.Hex() // 1000 USDT
	user2 = keys.TutorialUser2Address.Hex() // 5 ETH
)

func genesis() []tut.Funding { return tut.TutorialGenesis(user1, user2) }

// signed returns a legacy order payload signed by key.
func signed(t testing.TB, key *ecdsa.PrivateKey, side string, qty, price uint64) replicated.OrderPayload {
	t.Helper()
	text := legacy.Message(side, qty, price, "ETH", "USDT")
	sig, err := legacy.Sign(key, text)
	if err != nil {
		t.Fatal(err)
	}
	h := legacy.Hash(text)
	return replicated.OrderPayload{ID: "0x" + hex.EncodeToString(h[:]), User: keys.Address(key).Hex(), OrderType: side, BaseToken: "ETH",
		QuoteToken: "USDT", Quantity: json.RawMessage(amount.Format(qty)), Price: json.RawMessage(amount.Format(price)), Signature: "0x" + hex.EncodeToString(sig)}
}

func batch(t testing.TB, ops ...replicated.OrderPayload) []byte {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustBalance(t *testing.T, l *ledger, account, token string, index uint64) uint64 {
	t.Helper()
	v, err := l.balanceAt(account, token, index)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLedgerAppliesBatchesAndKeepsHistory(t *testing.T) {
	l, err := newLedger(genesis())
	if err != nil {
		t.Fatal(err)
	}
	sell := signed(t, keys.TutorialUser2(), "sell", amount.Scale, 200*amount.Scale)
	buy := signed(t, keys.TutorialUser1(), "buy", amount.Scale, 200*amount.Scale)
	forged := signed(t, keys.TutorialUser2(), "buy", amount.Scale, 100*amount.Scale)
	forged.User = user1 // user2's signature, claimed as user1's

	l.apply(1, batch(t, sell))
	l.apply(2, batch(t, buy, forged))
	l.apply(3, []byte(`{"not":"an array"}`))
	l.apply(4, batch(t, sell)) // a replay of the first order's signature

	for _, tc := range []struct {
		account, token string
		index, want    uint64
	}{
		{user1, "USDT", 0, 1000 * amount.Scale},
		{user1, "USDT", 1, 1000 * amount.Scale},
		{user1, "USDT", 2, 800 * amount.Scale},
		{user1, "USDT", 4, 800 * amount.Scale},
		{user1, "ETH", 1, 0},
		{user1, "ETH", 2, amount.Scale},
		{user2, "ETH", 0, 5 * amount.Scale},
		{user2, "ETH", 1, 4 * amount.Scale}, // reserved by the resting sell
		{user2, "USDT", 1, 0},
		{user2, "USDT", 3, 200 * amount.Scale},
		{user2, "ETH", 4, 4 * amount.Scale},
	} {
		if got := mustBalance(t, l, tc.account, tc.token, tc.index); got != tc.want {
			t.Errorf("%s %s at %d: %s, want %s", tc.account[:8], tc.token, tc.index, amount.Format(got), amount.Format(tc.want))
		}
	}
	if _, err := l.balanceAt(user1, "USDT", 5); err == nil {
		t.Fatal("a balance at an index not applied yet")
	}
	if o, _ := l.OutcomeOf(buy.ID); o.Status != "filled" || o.Index != 2 {
		t.Fatalf("buy outcome %+v", o)
	}
	if o, _ := l.OutcomeOf(forged.ID); o.Status != "rejected" || !strings.Contains(o.Reason, "signature") {
		t.Fatalf("forged order outcome %+v", o)
	}
	if o, _ := l.OutcomeOf(sell.ID); o.Status != "rejected" || !strings.Contains(o.Reason, "already used") || o.Index != 4 {
		t.Fatalf("replayed order outcome %+v", o)
	}
	if applied, _ := l.State(); applied != 4 {
		t.Fatalf("applied %d after a malformed batch, want 4", applied)
	}
	if err := l.Book().CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// Two instances applying the same batches agree on every balance at every
// index, whatever the batches hold.
func TestLedgersAgree(t *testing.T) {
	var batches [][]byte
	for i := 0; i < 40; i++ {
		key, side := keys.TutorialUser1(), "buy"
		if i%2 == 1 {
			key, side = keys.TutorialUser2(), "sell"
		}
		o := signed(t, key, side, uint64(1+i%3)*amount.Scale/10, uint64(190+i%7)*amount.Scale)
		if i%5 == 4 {
			o.Price = json.RawMessage(`"not a number"`)
		}
		if i%7 == 6 {
			o.Quantity = json.RawMessage(`"` + string(o.Quantity) + `"`) // a decimal string is read too
		}
		batches = append(batches, batch(t, o))
		if i%9 == 8 {
			batches = append(batches, []byte("garbage"), batch(t, o))
		}
	}
	a, _ := newLedger(genesis())
	b, _ := newLedger(genesis())
	for i, body := range batches {
		a.apply(uint64(i+1), body)
		b.apply(uint64(i+1), body)
	}
	for idx := uint64(0); idx <= uint64(len(batches)); idx++ {
		for _, acct := range []string{user1, user2} {
			for _, tok := range []string{"ETH", "USDT"} {
				if x, y := mustBalance(t, a, acct, tok, idx), mustBalance(t, b, acct, tok, idx); x != y {
					t.Fatalf("%s %s at %d: %d vs %d", acct, tok, idx, x, y)
				}
			}
		}
	}
	if mustBalance(t, a, user1, "ETH", uint64(len(batches))) == 0 {
		t.Fatal("no trade happened: the test proves nothing")
	}
}

func TestHistoryIsBounded(t *testing.T) {
	l, _ := newLedger(genesis())
	// Each buy rests and reserves USDT: user1's balance changes every batch.
	for i := 1; i <= historyPerKeyMax+10; i++ {
		l.apply(uint64(i), batch(t, signed(t, keys.TutorialUser1(), "buy", amount.Scale/1000, uint64(i)*amount.Scale/100)))
	}
	if _, err := l.balanceAt(user1, "USDT", 1); !errors.Is(err, errIndexGone) {
		t.Fatalf("balance at index 1 after %d changes: %v, want errIndexGone", historyPerKeyMax+10, err)
	}
	if _, err := l.balanceAt(user1, "USDT", historyPerKeyMax+10); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	o := signed(f, keys.TutorialUser1(), "buy", amount.Scale, 200*amount.Scale)
	f.Add(batch(f, o))
	f.Add([]byte(`[{"id":"0x1","quantity":"-1"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, _ := newLedger(genesis())
		// Whatever a batch holds, applying it never panics and leaves a
		// consistent book.
		l.apply(1, body)
		if err := l.Book().CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		if applied, _ := l.State(); applied != 1 {
			t.Fatalf("applied %d, want 1", applied)
		}
	})
}

func FuzzDecodeIdentity(f *testing.F) {
	f.Add([]byte(`{"id":"step4-5101","app":"tutorial","chain_id":31337,"bls_pubkey":"0x","bls_pop":"0x"}`))
	f.Add([]byte(`{"id":""}`))
	f.Add([]byte(`{"id":"a","app":"b","bls_pubkey":"c","bls_pop":"d","x":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := decodeIdentity(body)
		if err == nil && (id.ID == "" || id.App == "" || id.BLSPubkey == "" || id.BLSPop == "") {
			t.Fatalf("accepted an incomplete identity %+v", id)
		}
	})
}
