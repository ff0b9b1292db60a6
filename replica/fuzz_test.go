package replica

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
)

// Seed corpus: each fuzz target's seeds (below) are also committed under
// testdata/fuzz/<Target>/ so `go test` runs them as regression cases.
// WRITE_FUZZ_CORPUS=1 go test -run TestFuzzCorpus rewrites them.

func orderSeeds(t testing.TB) [][]byte {
	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_500_000, price: 2000_000_000, nonce: 1})
	return [][]byte{
		[]byte(mustJSONTB(t, good)),
		[]byte(`{"trader":"0x89386eE2ccc6588062fe0B8a9841A0e297Cb423E","market":"ETH/USDT","side":"buy","orderType":"market","quantity":1500000,"price":"2000000000","nonce":1,"expiry":1700000600,"signature":"0x` + string(bytes.Repeat([]byte("11"), 65)) + `"}`),
		[]byte(`{"trader":"0x0","quantity":1e400}`),
		[]byte(`{"quantity":-1,"price":"9223372036854775808"}`),
		[]byte(``),
		[]byte(`null`),
		[]byte(`[]`),
	}
}

func legacySeeds(t testing.TB) [][]byte {
	l := signLegacy(t, bob, "sell", "1.5", "2000")
	return [][]byte{
		[]byte(mustJSONTB(t, l)),
		[]byte(`{"sender":"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d","order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1.5,"price":2000,"signature":"0x00"}`),
		[]byte(`{"sender":"","quantity":0.0000001,"base_token":"A/B"}`),
		[]byte(`{"sender":"x","quantity":1e20}`),
	}
}

func cancelSeeds(t testing.TB) [][]byte {
	c := signCancel(t, alice, "0x"+string(bytes.Repeat([]byte("ab"), 32)), 1, 0)
	return [][]byte{[]byte(mustJSONTB(t, c)), []byte(`{"orderId":"0x12","nonce":"x"}`), []byte(`{"trader":1}`)}
}

func withdrawSeeds(t testing.TB) [][]byte {
	w := signWithdraw(t, carol, "ETH", 1_000_000, addr(bob), 1, 0)
	return [][]byte{[]byte(mustJSONTB(t, w)), []byte(`{"token":"A/B","amount":"0"}`), []byte(`{"recipient":"0x"}`)}
}

func depositSeeds(t testing.TB) [][]byte {
	d := signDeposit(t, bridge, addr(alice), "USDT", 1_000_000, 1, 0)
	return [][]byte{[]byte(mustJSONTB(t, d)), []byte(`{"account":"0x0000000000000000000000000000000000000000","amount":1}`)}
}

func cancelAllSeeds(t testing.TB) [][]byte {
	return [][]byte{
		[]byte(mustJSONTB(t, signCancelAll(t, alice, "ETH/USDT", 1))),
		[]byte(mustJSONTB(t, signCancelAll(t, bob, "", 2))),
		[]byte(`{"trader":"0x89386eE2ccc6588062fe0B8a9841A0e297Cb423E","market":"ETH","nonce":1,"expiry":"2","signature":"0x00"}`),
		[]byte(`{"market":7}`),
	}
}

func ordersBatchSeeds(t testing.TB) [][]byte {
	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_500_000, price: 2000_000_000, nonce: 1})
	fok := signOrder(t, bob, orderSpec{typ: "fok", side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	return [][]byte{
		[]byte(batchBody(t, good, fok, signLegacy(t, bob, "sell", "1", "2000"))),
		[]byte(batchBody(t, good, `{"trader":1}`, `[]`, `null`)),
		[]byte(`{"orders":[]}`),
		[]byte(`{"orders":null}`),
		[]byte(`{"orders":[{}],"wait":true}`),
		[]byte(`[]`),
	}
}

func batchSeeds(t testing.TB) [][]byte {
	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_500_000, price: 2000_000_000, nonce: 1})
	return [][]byte{
		batchOf(t, good, signLegacy(t, bob, "sell", "1", "2000"), signCancel(t, alice, orderID(t, good), 2, 0),
			signWithdraw(t, carol, "ETH", 1_000_000, addr(bob), 1, 0), signDeposit(t, bridge, addr(alice), "USDT", 1, 1, 0),
			signCancelAll(t, alice, "", 3), signOrder(t, carol, orderSpec{typ: "post_only", side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 1})),
		[]byte(`[]`),
		[]byte(`[1,"x",null,{},{"op":1},{"op":"order","extra":true}]`),
		[]byte(`{"op":"order"}`),
		[]byte("[\xff]"),
	}
}

func genesisSeeds(testing.TB) [][]byte {
	return [][]byte{
		[]byte(`{"balances":[{"address":"0xc66F8Fba940064B5bA8d437d6fF829E60134230E","token":"USDT","amount":"1000"}]}`),
		[]byte(`{"balances":{"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d":{"ETH":"5","USDT":1.5}}}`),
		[]byte(`{"balances":7}`),
		[]byte(`{}`),
	}
}

func mustJSONTB(t testing.TB, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var corpora = map[string]func(testing.TB) [][]byte{
	"FuzzDecodeOrderRequest":     func(t testing.TB) [][]byte { return append(orderSeeds(t), legacySeeds(t)...) },
	"FuzzDecodeLegacyOrder":      legacySeeds,
	"FuzzDecodeCancelRequest":    cancelSeeds,
	"FuzzDecodeWithdrawRequest":  withdrawSeeds,
	"FuzzDecodeDepositRequest":   depositSeeds,
	"FuzzDecodeBatch":            batchSeeds,
	"FuzzDecodeCancelAllRequest": cancelAllSeeds,
	"FuzzDecodeOrdersBatch":      ordersBatchSeeds,
	"FuzzParseGenesis":           genesisSeeds,
	"FuzzSplitBatch":             splitSeeds,
}

// splitSeeds are batch bodies with every JSON shape the splitter walks:
// nesting, escapes, white space, literals, and bodies that are not arrays.
func splitSeeds(t testing.TB) [][]byte {
	return append(batchSeeds(t),
		[]byte(` [ {"a":[1,{"b":"]\\\"}"}]} , "x\\\\" ,-1.5e3,true, false ,null,[[]],{} ] `),
		[]byte("\t[\n]\r\n"),
		[]byte(`null`),
		[]byte(` null `),
		[]byte(`"[1,2]"`),
		[]byte(`7`),
		[]byte(`[1,]`),
		[]byte(`[1 2]`),
		[]byte(`[`),
		[]byte(``),
	)
}

// The batch splitter gives exactly what encoding/json gives when it
// decodes the body into []json.RawMessage: the same entries, byte for
// byte, and an error for the same bodies.
func FuzzSplitBatch(f *testing.F) {
	for _, s := range splitSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > BatchBytesMax || !utf8.Valid(body) {
			return // refused before the split, both ways
		}
		got, err := splitBatch(body)
		var want []json.RawMessage
		werr := json.Unmarshal(body, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("splitBatch error %v, encoding/json error %v, body %q", err, werr, body)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("splitBatch %q, encoding/json %q, body %q", got, want, body)
		}
	})
}

func TestFuzzCorpusIsCommitted(t *testing.T) {
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if os.Getenv("WRITE_FUZZ_CORPUS") != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds(t) {
				content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			t.Errorf("%s: no committed seed corpus in %s (%v)", name, dir, err)
		}
	}
}

// checkRoundTrip: a decoded operation's canonical wire form decodes back
// to the same operation.
func checkRoundTrip(t *testing.T, op *Op) {
	if fast, slow := op.Wire(), op.wireJSON(); !bytes.Equal(fast, slow) {
		t.Fatalf("wire form %s, encoding/json writes %s", fast, slow)
	}
	back, err := DecodeOp(testDomain(), op.Wire())
	if err != nil {
		t.Fatalf("wire form %s does not decode: %v", op.Wire(), err)
	}
	if back.ID != op.ID || back.Signer != op.Signer || back.Kind != op.Kind || !bytes.Equal(back.Sig, op.Sig) {
		t.Fatalf("round trip changed the operation: %+v -> %+v", op, back)
	}
}

func fuzzDecoder(f *testing.F, name string, decode func(*testing.T, []byte) (*Op, error)) {
	for _, s := range corpora[name](f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		op, err := decode(t, body)
		if err != nil {
			if op != nil {
				t.Fatal("an error and an operation")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkRoundTrip(t, op)
		_ = op.Verify() // must not panic whatever the signature
	})
}

func FuzzDecodeOrderRequest(f *testing.F) {
	d := testDomain()
	fuzzDecoder(f, "FuzzDecodeOrderRequest", func(t *testing.T, b []byte) (*Op, error) {
		checkCanonicalOrderRequestPath(t, d, b)
		return DecodeOrderRequest(d, b)
	})
}

func FuzzDecodeLegacyOrder(f *testing.F) {
	fuzzDecoder(f, "FuzzDecodeLegacyOrder", func(_ *testing.T, b []byte) (*Op, error) {
		op, err := DecodeOrderRequest(testDomain(), b)
		if err == nil && op.Kind != OpLegacyOrder {
			return nil, errTest("not legacy")
		}
		return op, err
	})
}

func FuzzDecodeCancelRequest(f *testing.F) {
	d := testDomain()
	fuzzDecoder(f, "FuzzDecodeCancelRequest", func(_ *testing.T, b []byte) (*Op, error) { return DecodeCancelRequest(d, b) })
}

func FuzzDecodeWithdrawRequest(f *testing.F) {
	d := testDomain()
	fuzzDecoder(f, "FuzzDecodeWithdrawRequest", func(_ *testing.T, b []byte) (*Op, error) { return DecodeWithdrawRequest(d, b) })
}

func FuzzDecodeDepositRequest(f *testing.F) {
	d := testDomain()
	fuzzDecoder(f, "FuzzDecodeDepositRequest", func(_ *testing.T, b []byte) (*Op, error) { return DecodeDepositRequest(d, b) })
}

func FuzzDecodeCancelAllRequest(f *testing.F) {
	d := testDomain()
	fuzzDecoder(f, "FuzzDecodeCancelAllRequest", func(_ *testing.T, b []byte) (*Op, error) { return DecodeCancelAllRequest(d, b) })
}

// FuzzDecodeOrdersBatch: a POST /orders body gives either a body error or
// one entry per order, each an operation or an error naming its position,
// and each operation is what POST /order would decode from that entry.
func FuzzDecodeOrdersBatch(f *testing.F) {
	for _, s := range ordersBatchSeeds(f) {
		f.Add(s)
	}
	d := testDomain()
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, errs, err := DecodeOrdersBatch(d, body)
		if err != nil {
			if ops != nil || errs != nil || err.Error() == "" {
				t.Fatal("a body error with entries, or without a message")
			}
			return
		}
		if len(ops) == 0 || len(ops) > 100 || len(ops) != len(errs) {
			t.Fatalf("%d operations, %d errors", len(ops), len(errs))
		}
		for i, op := range ops {
			if (op == nil) == (errs[i] == nil) {
				t.Fatalf("entry %d: op=%v err=%v", i, op != nil, errs[i])
			}
			if errs[i] != nil && !bytes.HasPrefix([]byte(errs[i].Error()), []byte(fmt.Sprintf("orders[%d]: ", i))) {
				t.Fatalf("entry %d: error %q does not name its position", i, errs[i])
			}
			if op != nil {
				checkRoundTrip(t, op)
			}
		}
	})
}

// FuzzDecodeBatch also applies what decodes to two ledgers: any batch body
// leaves them with equal digests and their invariants intact.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range batchSeeds(f) {
		f.Add(s)
	}
	d := testDomain()
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, err := DecodeBatch(d, body)
		if err != nil && ops != nil {
			t.Fatal("an error and entries")
		}
		if raws, serr := splitBatch(body); serr == nil {
			for _, raw := range raws {
				checkCanonicalOrderPath(t, d, raw)
			}
		}
		for _, e := range ops {
			if (e.Op == nil) == (e.Err == nil) {
				t.Fatalf("entry with op=%v err=%v", e.Op != nil, e.Err)
			}
			if e.Op != nil {
				checkRoundTrip(t, e.Op)
			}
		}
		b := Batch{Index: 1, Timestamp: testNowSec * 1000, Body: body}
		b.ChainingHash = NextChainingHash([32]byte{}, BatchHash(b.Timestamp, body))
		// The parallel decoder agrees with the sequential one. Signatures
		// are checked once (the costly part); both ledgers apply the same
		// results.
		pops, sigErrs, perr := DecodeAndVerifyBatch(d, body, 3, nil)
		if (perr == nil) != (err == nil) || len(pops) != len(ops) {
			t.Fatalf("parallel decode: %d entries (%v), sequential %d (%v)", len(pops), perr, len(ops), err)
		}
		for i := range ops {
			if pops[i].ID != ops[i].ID || (pops[i].Err == nil) != (ops[i].Err == nil) {
				t.Fatalf("entry %d decodes differently in parallel", i)
			}
		}
		var digests [2][32]byte
		for i := range digests {
			l, lerr := NewLedger(DefaultLedgerConfig(), d, testGenesis())
			if lerr != nil {
				t.Fatal(lerr)
			}
			a := l.ApplyBatch(b, ops, err, sigErrs)
			if len(a.Outcomes) != len(ops) {
				t.Fatalf("%d outcomes for %d entries", len(a.Outcomes), len(ops))
			}
			if ierr := l.eng.CheckInvariants(); ierr != nil {
				t.Fatal(ierr)
			}
			digests[i], _ = l.Digest()
		}
		if digests[0] != digests[1] {
			t.Fatal("the same batch gave two digests")
		}
	})
}

func FuzzParseGenesis(f *testing.F) {
	for _, s := range genesisSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			return
		}
		_, _ = NewLedger(DefaultLedgerConfig(), testDomain(), g) // errors are fine, panics are not
	})
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// checkCanonicalOrderPath: whenever the fast order decoder accepts an
// entry, the general decoder gives the same operation or the same error.
func checkCanonicalOrderPath(t *testing.T, d *Domain, raw []byte) {
	t.Helper()
	r, ok := decodeCanonicalOrder(raw)
	if !ok {
		return
	}
	fast, ferr := OrderOp(d, &r)
	slow, serr := decodeOpJSON(d, raw)
	checkSameOp(t, raw, fast, ferr, slow, serr)
}

// checkSameOp fails unless the fast and the general decoder of input gave
// the same operation, or the same error.
func checkSameOp(t *testing.T, input []byte, fast *Op, ferr error, slow *Op, serr error) {
	t.Helper()
	if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
		t.Fatalf("%s: fast path error %v, general %v", input, ferr, serr)
	}
	if ferr == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s: fast path %+v, general %+v", input, fast, slow)
	}
}

// checkCanonicalOrderRequestPath is checkCanonicalOrderPath for POST
// /order bodies.
func checkCanonicalOrderRequestPath(t *testing.T, d *Domain, body []byte) {
	t.Helper()
	r, ok := decodeCanonicalOrderRequest(body)
	if !ok {
		return
	}
	fast, ferr := OrderOp(d, &r)
	slow, serr := decodeOrderRequestGeneral(d, body)
	checkSameOp(t, body, fast, ferr, slow, serr)
}

// The fast order decoder takes Wire's own form, and on every single-byte
// change of it that it still accepts it agrees with encoding/json.
func TestCanonicalOrderDecodingAgreesWithEncodingJSON(t *testing.T) {
	d := testDomain()
	wire := wireOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_500_000, price: 2000_000_000, nonce: 7}))
	if _, ok := decodeCanonicalOrder(wire); !ok {
		t.Fatalf("Wire's own form is not taken by the fast path: %s", wire)
	}
	checkCanonicalOrderPath(t, d, wire)
	body := []byte(mustJSON(t, signOrder(t, alice, orderSpec{side: "sell", qty: 2_500_000, price: 1990_000_000, nonce: 8})))
	if _, ok := decodeCanonicalOrderRequest(body); !ok {
		t.Fatalf("an OrderRequest as encoding/json writes it is not taken by the fast path: %s", body)
	}
	accepted := 0
	for i := range body {
		for _, c := range []byte{'"', '\\', ',', ':', '}', '{', ' ', 0x01, 'A', '0', 0xc3} {
			for _, m := range [][]byte{
				append(append(append([]byte{}, body[:i]...), c), body[i+1:]...),
				append(append(append([]byte{}, body[:i]...), c), body[i:]...),
				append(append([]byte{}, body[:i]...), body[i+1:]...),
			} {
				if _, ok := decodeCanonicalOrderRequest(m); ok {
					accepted++
				}
				checkCanonicalOrderRequestPath(t, d, m)
			}
		}
	}
	for i := range wire {
		for _, c := range []byte{'"', '\\', ',', ':', '}', ' ', 0x01, 'A', '0', 0xc3} {
			for _, m := range [][]byte{
				append(append(append([]byte{}, wire[:i]...), c), wire[i+1:]...), // replace
				append(append(append([]byte{}, wire[:i]...), c), wire[i:]...),   // insert
				append(append([]byte{}, wire[:i]...), wire[i+1:]...),            // delete
			} {
				if _, ok := decodeCanonicalOrder(m); ok {
					accepted++
				}
				checkCanonicalOrderPath(t, d, m)
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no mutation was accepted by the fast path; the test compares nothing")
	}
}

// FuzzOpenSnapshot: the sealed snapshot reader never panics, and whatever
// it accepts as sealed reseals to the same bytes (nothing unchecked slips
// through).
func FuzzOpenSnapshot(f *testing.F) {
	f.Add(sealSnapshot(3, [32]byte{1}, []byte("ledger snapshot bytes")))
	f.Add(sealSnapshot(0, [32]byte{}, nil))
	f.Add([]byte("legacy gob bytes"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := openSnapshot(b)
		if err != nil || s.Legacy {
			return
		}
		if again := sealSnapshot(s.Index, s.Digest, s.Payload); string(again) != string(b) {
			if len(s.Payload) > 0 || len(b) != len(again) {
				t.Fatalf("accepted %x, which reseals to %x", b, again)
			}
		}
	})
}

// FuzzOpenLogRecord: the log record reader never panics, and a sealed
// record it accepts reseals to the same bytes.
func FuzzOpenLogRecord(f *testing.F) {
	f.Add(uint64(5), sealLogRecord(&Batch{Index: 5, Timestamp: 1_700_000_000_000, ChainingHash: [32]byte{9}, Body: []byte(`[]`)}))
	f.Add(uint64(1), append(make([]byte, 40), "legacy body"...))
	f.Add(uint64(2), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, index uint64, v []byte) {
		b, err := openLogRecord(index, v)
		if err != nil || len(v) == 0 || v[0] != logRecordVersion {
			return
		}
		if again := sealLogRecord(&b); string(again) != string(v) {
			t.Fatalf("accepted %x, which reseals to %x", v, again)
		}
	})
}
