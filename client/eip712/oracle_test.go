package eip712

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
)

// go-ethereum's generic, reflection-driven EIP-712 implementation (the one
// behind its signer) is the second oracle: random messages of every type
// must hash the same under it and under our static encoder.

func gethTypes(primary string) apitypes.Types {
	out := apitypes.Types{}
	for _, name := range []string{"EIP712Domain", primary} {
		fields, ok := TypeFields(name)
		if !ok {
			panic(name)
		}
		for _, f := range fields {
			out[name] = append(out[name], apitypes.Type{Name: f.Name, Type: f.Type})
		}
	}
	return out
}

func gethDomain(chainID uint64) apitypes.TypedDataDomain {
	return apitypes.TypedDataDomain{Name: DomainName, Version: DomainVersion, ChainId: math.NewHexOrDecimal256(int64(chainID))}
}

// gethHashes returns go-ethereum's struct hash and digest.
func gethHashes(t *testing.T, chainID uint64, primary string, msg apitypes.TypedDataMessage) ([32]byte, [32]byte) {
	t.Helper()
	td := apitypes.TypedData{Types: gethTypes(primary), PrimaryType: primary, Domain: gethDomain(chainID), Message: msg}
	sh, err := td.HashStruct(primary, msg)
	if err != nil {
		t.Fatalf("geth HashStruct %s %v: %v", primary, msg, err)
	}
	digest, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		t.Fatalf("geth TypedDataAndHash: %v", err)
	}
	return [32]byte(sh), [32]byte(digest)
}

// gethDigestOfJSON hashes an eth_signTypedData_v4 JSON with go-ethereum.
func gethDigestOfJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var td apitypes.TypedData
	if err := json.Unmarshal(raw, &td); err != nil {
		t.Fatalf("go-ethereum cannot read our typed data JSON: %v\n%s", err, raw)
	}
	digest, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		t.Fatalf("go-ethereum cannot hash our typed data JSON: %v\n%s", err, raw)
	}
	return hexutil.Encode(digest)
}

type gen struct{ r *rand.Rand }

func (g gen) u64() uint64 {
	switch g.r.IntN(5) {
	case 0:
		return 0
	case 1:
		return ^uint64(0)
	case 2:
		return 1<<63 - 1
	}
	return g.r.Uint64() >> g.r.IntN(64)
}

func (g gen) addr() common.Address {
	var a common.Address
	for i := range a {
		a[i] = byte(g.r.Uint32())
	}
	return a
}

func (g gen) b32() [32]byte {
	var w [32]byte
	for i := range w {
		w[i] = byte(g.r.Uint32())
	}
	return w
}

func (g gen) str() string {
	pool := []string{"", "ETH/USDT", "buy", "sell", "limit", "market", "orderbook", "ΞTH", "💱", "a\x00b", "USDT"}
	s := pool[g.r.IntN(len(pool))]
	if g.r.IntN(3) == 0 {
		s += pool[g.r.IntN(len(pool))]
	}
	return s
}

func dec(v uint64) string { return strconv.FormatUint(v, 10) }

func quickCheckSeed(t *testing.T) uint64 {
	seed := rand.Uint64()
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q", s)
		}
		seed = v
	}
	t.Logf("SEED=%d", seed)
	return seed
}

func TestQuickCheckAgainstGoEthereum(t *testing.T) {
	seed := quickCheckSeed(t)
	g := gen{rand.New(rand.NewPCG(seed, 0x5eb00c))}
	const rounds = 60
	for i := 0; i < rounds; i++ {
		chainID := []uint64{1, 31337, 8453, g.r.Uint64() >> 2}[g.r.IntN(4)]
		d := NewDomain(chainID)
		var (
			primary string
			ours    Message
			msg     apitypes.TypedDataMessage
		)
		switch g.r.IntN(8) {
		case 0:
			o := &Order{Trader: g.addr(), Market: g.str(), Side: g.str(), OrderType: g.str(), Quantity: g.u64(), Price: g.u64(), Nonce: g.u64(), Expiry: g.u64()}
			primary, ours = "Order", o
			msg = apitypes.TypedDataMessage{"trader": o.Trader.Hex(), "market": o.Market, "side": o.Side, "orderType": o.OrderType,
				"quantity": dec(o.Quantity), "price": dec(o.Price), "nonce": dec(o.Nonce), "expiry": dec(o.Expiry)}
			// The typed-data JSON we hand wallets must hash the same.
			raw, err := OrderTypedData(d, o)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := gethDigestOfJSON(t, raw), hexOf(d.Digest(o)); got != want {
				t.Fatalf("SEED=%d: geth digest of OrderTypedData %s, ours %s", seed, got, want)
			}
		case 1:
			c := &Cancel{Trader: g.addr(), OrderID: g.b32(), Nonce: g.u64(), Expiry: g.u64()}
			primary, ours = "Cancel", c
			msg = apitypes.TypedDataMessage{"trader": c.Trader.Hex(), "orderId": hexOf(c.OrderID), "nonce": dec(c.Nonce), "expiry": dec(c.Expiry)}
			raw, err := CancelTypedData(d, c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := gethDigestOfJSON(t, raw), hexOf(d.Digest(c)); got != want {
				t.Fatalf("SEED=%d: geth digest of CancelTypedData %s, ours %s", seed, got, want)
			}
		case 2:
			w := &Withdraw{Trader: g.addr(), Token: g.str(), Amount: g.u64(), Recipient: g.addr(), Nonce: g.u64(), Expiry: g.u64()}
			primary, ours = "Withdraw", w
			msg = apitypes.TypedDataMessage{"trader": w.Trader.Hex(), "token": w.Token, "amount": dec(w.Amount),
				"recipient": w.Recipient.Hex(), "nonce": dec(w.Nonce), "expiry": dec(w.Expiry)}
			raw, err := WithdrawTypedData(d, w)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := gethDigestOfJSON(t, raw), hexOf(d.Digest(w)); got != want {
				t.Fatalf("SEED=%d: geth digest of WithdrawTypedData %s, ours %s", seed, got, want)
			}
		case 3:
			l := &Lock{App: g.str(), View: g.u64(), Index: g.u64(), ChainingHash: g.b32()}
			primary, ours = "Lock", l
			msg = apitypes.TypedDataMessage{"app": l.App, "view": dec(l.View), "index": dec(l.Index), "chainingHash": hexOf(l.ChainingHash)}
		case 4:
			f := &Finalize{App: g.str(), View: g.u64(), Index: g.u64(), ChainingHash: g.b32()}
			primary, ours = "Finalize", f
			msg = apitypes.TypedDataMessage{"app": f.App, "view": dec(f.View), "index": dec(f.Index), "chainingHash": hexOf(f.ChainingHash)}
		case 5:
			b := &Balance{App: g.str(), Account: g.addr(), Token: g.str(), Balance: g.u64(), Index: g.u64()}
			primary, ours = "Balance", b
			msg = apitypes.TypedDataMessage{"app": b.App, "account": b.Account.Hex(), "token": b.Token, "balance": dec(b.Balance), "index": dec(b.Index)}
		case 6:
			w := &Withdrawal{App: g.str(), ID: g.b32(), Trader: g.addr(), Token: g.str(), Amount: g.u64(), Recipient: g.addr(), Index: g.u64()}
			primary, ours = "Withdrawal", w
			msg = apitypes.TypedDataMessage{"app": w.App, "id": hexOf(w.ID), "trader": w.Trader.Hex(), "token": w.Token,
				"amount": dec(w.Amount), "recipient": w.Recipient.Hex(), "index": dec(w.Index)}
		case 7:
			st := &State{App: g.str(), Index: g.u64(), StateDigest: g.b32()}
			primary, ours = "State", st
			msg = apitypes.TypedDataMessage{"app": st.App, "index": dec(st.Index), "stateDigest": hexOf(st.StateDigest)}
		}
		sh, digest := gethHashes(t, chainID, primary, msg)
		if got := ours.StructHash(); got != sh {
			t.Fatalf("SEED=%d round %d %s %v: struct hash %x, geth %x", seed, i, primary, fmt.Sprint(msg), got, sh)
		}
		if got := d.Digest(ours); got != digest {
			t.Fatalf("SEED=%d round %d %s: digest %x, geth %x", seed, i, primary, got, digest)
		}
	}
}

// The cache of string hashes gives what hashing gives, hit or miss, and
// stops growing at its bound.
func TestStringHashCacheIsExactAndBounded(t *testing.T) {
	long := strings.Repeat("x", stringHashLenMax+1)
	for _, s := range []string{"", "buy", "ETH-USDT", "ETH-USDT", long, long} {
		if got, want := stringHash(s), Keccak256([]byte(s)); got != want {
			t.Fatalf("stringHash(%q) = %x, want %x", s, got, want)
		}
	}
	for i := 0; i < 2*stringHashesMax; i++ {
		s := "market-" + strconv.Itoa(i)
		if got, want := stringHash(s), Keccak256([]byte(s)); got != want {
			t.Fatalf("stringHash(%q) = %x, want %x", s, got, want)
		}
	}
	stringHashes.RLock()
	n := len(stringHashes.m)
	stringHashes.RUnlock()
	if n > stringHashesMax {
		t.Fatalf("%d strings cached, bound %d", n, stringHashesMax)
	}
}

func BenchmarkOrderDigest(b *testing.B) {
	d := NewDomain(DefaultChainID)
	o := &Order{Trader: common.HexToAddress("0x00000000000000000000000000000000000000aa"), Market: "ETH-USDT",
		Side: "buy", OrderType: "limit", Quantity: 1_000_000, Price: 2000_000_000, Nonce: 7, Expiry: 1 << 40}
	b.ReportAllocs()
	for b.Loop() {
		d.Digest(o)
	}
}
