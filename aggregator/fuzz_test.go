package aggregator

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

// The decoders at the aggregator's edges: replica answers (a Byzantine
// replica controls every byte) and user queries. None may panic; whatever
// they accept must be self-consistent.

func fuzzCluster(t testing.TB) *testNet {
	return &testNet{c: testCluster(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"},
		[]*bls.SecretKey{testKey("replica1"), testKey("replica2"), testKey("replica3")})}
}

func FuzzBalanceAnswer(f *testing.F) {
	tn := fuzzCluster(f)
	a, err := New(tn.c, NewHTTPReplicas(tn.c, nil, 1<<16), TestConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	d := tn.c.Domain.Digest(&eip712.Balance{App: "orderbook", Account: alice, Token: "USDT", Balance: 1500000, Index: 3})
	f.Add([]byte(`{"address":"` + alice.Hex() + `","token":"USDT","balance":"1.5","balance_units":"1500000","index":3,"replica":"replica1","signature":"` + testKey("replica1").Sign(d).Hex() + `"}`))
	f.Add([]byte(`{"address":"0x0","token":"","balance":1,"index":-1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeBalance(body)
		if err != nil {
			return
		}
		s := a.balanceShare(0, alice, "USDT", 3, b)
		if !s.signed() {
			if s.kind == "" || s.reason == "" {
				t.Fatal("refused share without a reason")
			}
			return
		}
		// Accepted: it answers exactly what was asked, consistently.
		if b.Replica != "replica1" || b.Index != 3 || b.Token != "USDT" || common.HexToAddress(b.Address) != alice {
			t.Fatalf("accepted an answer to another question: %+v", b)
		}
		if amount.Format(s.units) != b.Balance || strconv.FormatUint(s.units, 10) == "" {
			t.Fatalf("accepted inconsistent amounts: %+v", b)
		}
		if s.digest != tn.c.Domain.Digest(&eip712.Balance{App: "orderbook", Account: alice, Token: "USDT", Balance: s.units, Index: 3}) {
			t.Fatal("share digest is not the digest of its fields")
		}
	})
}

func FuzzWithdrawalAnswer(f *testing.F) {
	tn := fuzzCluster(f)
	a, err := New(tn.c, NewHTTPReplicas(tn.c, nil, 1<<16), TestConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	id := eip712.Keccak256([]byte("w"))
	rec := &eip712.Withdrawal{App: "orderbook", ID: id, Trader: alice, Token: "USDT", Amount: 2, Recipient: bob, Index: 4}
	f.Add([]byte(`{"app":"orderbook","id":"` + hex32(id) + `","trader":"` + alice.Hex() + `","token":"USDT","amount":"0.000002","amount_units":"2","recipient":"` +
		bob.Hex() + `","index":4,"timestamp":1,"replica":"replica2","signature":"` + testKey("replica2").Sign(tn.c.Domain.Digest(rec)).Hex() + `"}`))
	f.Add([]byte(`{"id":"0x","amount_units":"-1"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := decodeWithdrawal(body)
		if err != nil {
			return
		}
		s := a.withdrawalShare(1, id, w)
		if !s.signed() {
			if s.kind == "" || s.reason == "" {
				t.Fatal("refused share without a reason")
			}
			return
		}
		if s.withdrawal.ID != id || w.Replica != "replica2" || amount.Format(s.withdrawal.Amount) != w.Amount {
			t.Fatalf("accepted an inconsistent record: %+v", w)
		}
		if s.digest != tn.c.Domain.Digest(s.withdrawal) {
			t.Fatal("share digest is not the digest of its fields")
		}
	})
}

func FuzzStateAnswer(f *testing.F) {
	f.Add([]byte(`{"app":"orderbook","replica":"replica1","applied_index":17,"state_digest":"0x00"}`))
	f.Add([]byte(`{"applied_index":18446744073709551616}`))
	f.Add([]byte(`{"applied_index":"1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := decodeState(body)
		if err == nil && st == nil {
			t.Fatal("nil state without an error")
		}
	})
}

func FuzzBalanceQuery(f *testing.F) {
	f.Add("address=" + alice.Hex() + "&token=USDT")
	f.Add("address=0x12&token=")
	f.Add("address=" + alice.Hex() + "&token=A%2FB&token=C")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		addr, token, err := ParseBalanceQuery(q)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if checkToken(token) != nil || common.HexToAddress(q.Get("address")) != addr || q.Get("token") != token {
			t.Fatalf("accepted %q as %s %q", raw, addr.Hex(), token)
		}
	})
}

func FuzzWithdrawalQuery(f *testing.F) {
	f.Add("id=0x" + "ab12" + "00000000000000000000000000000000000000000000000000000000000f")
	f.Add("id=0x12")
	f.Add("id=&id=")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		id, err := ParseWithdrawalQuery(q)
		if err != nil {
			return
		}
		if len(q.Get("id")) != 66 || common.HexToHash(q.Get("id")) != common.Hash(id) {
			t.Fatalf("accepted %q as %s", raw, hex32(id))
		}
	})
}

// FuzzParseStateQuery: any query either parses to the positive index its
// one value names, or is refused; never a panic.
func FuzzParseStateQuery(f *testing.F) {
	for _, q := range []string{"index=8", "index=0", "index=+1", "index=1&index=2", "index=18446744073709551615", ""} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		n, err := ParseStateQuery(q)
		if err != nil {
			return
		}
		if want, _ := strconv.ParseUint(q.Get("index"), 10, 64); n == 0 || n != want {
			t.Fatalf("%q parsed to %d", raw, n)
		}
	})
}
