package client

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

var tutorialBuyer = common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")

// balanceProof signs m with the given replicas (indexes) and assembles
// the proof the way the aggregator does.
func balanceProof(tn *testNet, m eip712.Balance, replicas ...int) *BalanceProof {
	d := tn.c.Domain.Digest(&m)
	var sigs []*bls.Signature
	var ids []string
	for _, i := range replicas {
		sigs = append(sigs, tn.replicaKeys[i].Sign(d))
		ids = append(ids, tn.c.Replicas[i].ID)
	}
	return NewBalanceProof(tn.c, m, bls.Aggregate(sigs), ids)
}

func withdrawalProof(tn *testNet, m eip712.Withdrawal, replicas ...int) *WithdrawalProof {
	d := tn.c.Domain.Digest(&m)
	var sigs []*bls.Signature
	var ids []string
	for _, i := range replicas {
		sigs = append(sigs, tn.replicaKeys[i].Sign(d))
		ids = append(ids, tn.c.Replicas[i].ID)
	}
	return NewWithdrawalProof(tn.c, m, bls.Aggregate(sigs), ids)
}

func sampleBalance() eip712.Balance {
	return eip712.Balance{App: testApp, Account: tutorialBuyer, Token: "USDT", Balance: 1_000_000_000, Index: 17}
}

func TestBalanceProofValid(t *testing.T) {
	tn := newFixedNet(t, "proof", 4, 3)
	for _, signers := range [][]int{{0, 1, 2}, {0, 2}, {2, 1}} {
		p := balanceProof(tn, sampleBalance(), signers...)
		if err := VerifyBalanceProof(tn.c, p); err != nil {
			t.Fatalf("signers %v: %v", signers, err)
		}
	}
	p := balanceProof(tn, sampleBalance(), 2, 0)
	if p.Balance != "1000" || p.BalanceUnits != "1000000000" || p.Threshold != 2 ||
		strings.Join(p.Signers, ",") != "replica1,replica3" || strings.Join(p.NonSigners, ",") != "replica2" {
		t.Fatalf("assembled proof %+v", p)
	}
	// The digest is the one ethers computes for the same Balance message.
	v := loadVectors(t)
	c := v.Cases[v.find(t, "balance")]
	if c.Message["account"] != tutorialBuyer.Hex() || c.Message["token"] != "USDT" || c.Message["balance"] != "1000000000" || c.Message["index"] != "17" {
		t.Fatalf("vector changed: %v", c.Message)
	}
	if p.Digest != c.Digest {
		t.Fatalf("digest %s, ethers %s", p.Digest, c.Digest)
	}
	// A proof survives JSON and ParseProof detects its kind.
	raw, _ := json.Marshal(p)
	kind, bp, wp, err := ParseProof(raw)
	if err != nil || kind != KindBalance || wp != nil {
		t.Fatalf("parse: %v %v", kind, err)
	}
	if err := VerifyBalanceProof(tn.c, bp); err != nil {
		t.Fatal(err)
	}
}

func TestBalanceProofTampering(t *testing.T) {
	tn := newFixedNet(t, "proof", 4, 3)
	outsider := fixedKey(t, "outsider")
	other := balanceProof(tn, eip712.Balance{App: testApp, Account: tutorialBuyer, Token: "USDT", Balance: 5, Index: 17}, 0, 1, 2)
	cases := []struct {
		name   string
		tamper func(p *BalanceProof)
		want   error
	}{
		{"app", func(p *BalanceProof) { p.App = "other" }, ErrProofApp},
		{"address", func(p *BalanceProof) { p.Address = "0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d" }, ErrProofDigest},
		{"address not hex", func(p *BalanceProof) { p.Address = "0xzz3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d" }, ErrProofMalformed},
		{"address bad checksum", func(p *BalanceProof) { p.Address = "0xC66F8Fba940064B5bA8d437d6fF829E60134230E" }, ErrProofMalformed},
		{"token", func(p *BalanceProof) { p.Token = "ETH" }, ErrProofDigest},
		{"empty token", func(p *BalanceProof) { p.Token = "" }, ErrProofMalformed},
		{"balance with its units", func(p *BalanceProof) { p.Balance, p.BalanceUnits = "2000", "2000000000" }, ErrProofDigest},
		{"balance text only", func(p *BalanceProof) { p.Balance = "2000" }, ErrProofAmountText},
		{"balance text not canonical", func(p *BalanceProof) { p.Balance = "1000.0" }, ErrProofAmountText},
		{"balance units not a number", func(p *BalanceProof) { p.BalanceUnits = "1e9" }, ErrProofMalformed},
		{"index", func(p *BalanceProof) { p.Index = 18 }, ErrProofDigest},
		{"digest", func(p *BalanceProof) { p.Digest = hex32([32]byte{9}) }, ErrProofDigest},
		{"digest malformed", func(p *BalanceProof) { p.Digest = "0x12" }, ErrProofMalformed},
		{"index with a matching digest (relabelled replay)", func(p *BalanceProof) {
			p.Index = 18
			m, _ := p.Message()
			p.Digest = hex32(tn.c.Domain.Digest(&m))
		}, ErrProofSignature},
		{"signature of another balance", func(p *BalanceProof) { p.Signature = other.Signature }, ErrProofSignature},
		{"signature malformed", func(p *BalanceProof) { p.Signature = "0x00" }, ErrProofMalformed},
		{"non-cluster signer", func(p *BalanceProof) { p.Signers = []string{"replica1", "replica9"} }, ErrProofSigner},
		{"node id as signer", func(p *BalanceProof) { p.Signers = []string{"replica1", "node1"} }, ErrProofSigner},
		{"duplicate signer", func(p *BalanceProof) {
			p.Signers = []string{"replica1", "replica1"}
			p.NonSigners = []string{"replica2", "replica3"}
		}, ErrProofDupSigner},
		{"wrong signer list", func(p *BalanceProof) {
			p.Signers = []string{"replica1", "replica3"}
			p.NonSigners = []string{"replica2"}
		}, ErrProofSignature},
		{"non-signers missing", func(p *BalanceProof) { p.NonSigners = nil }, ErrProofNonSigners},
		{"non-signer also a signer", func(p *BalanceProof) { p.NonSigners = []string{"replica1"} }, ErrProofNonSigners},
		{"threshold lowered", func(p *BalanceProof) { p.Threshold = 1 }, ErrProofThreshold},
		{"threshold above the signers", func(p *BalanceProof) { p.Threshold = 3 }, ErrProofTooFew},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := balanceProof(tn, sampleBalance(), 0, 1) // replica1, replica2; replica3 did not sign
			if err := VerifyBalanceProof(tn.c, p); err != nil {
				t.Fatalf("untampered: %v", err)
			}
			tc.tamper(p)
			if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("signed by too few", func(t *testing.T) {
		p := balanceProof(tn, sampleBalance(), 1)
		if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, ErrProofTooFew) {
			t.Fatalf("got %v", err)
		}
		p.Threshold = 1 // and it cannot lower its own bar
		if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, ErrProofThreshold) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signed by a key outside the cluster", func(t *testing.T) {
		// replica1 and an outsider sign; the proof claims replica1 and
		// replica2.
		m := sampleBalance()
		d := tn.c.Domain.Digest(&m)
		sig := bls.Aggregate([]*bls.Signature{tn.replicaKeys[0].Sign(d), outsider.Sign(d)})
		p := NewBalanceProof(tn.c, m, sig, []string{"replica1", "replica2"})
		if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, ErrProofSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signed by node keys", func(t *testing.T) {
		m := sampleBalance()
		d := tn.c.Domain.Digest(&m)
		sig := bls.Aggregate([]*bls.Signature{tn.nodeKeys[0].Sign(d), tn.nodeKeys[1].Sign(d)})
		p := NewBalanceProof(tn.c, m, sig, []string{"replica1", "replica2"})
		if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, ErrProofSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signed under another chain id", func(t *testing.T) {
		m := sampleBalance()
		d := eip712.NewDomain(1).Digest(&m)
		sig := bls.Aggregate([]*bls.Signature{tn.replicaKeys[0].Sign(d), tn.replicaKeys[1].Sign(d)})
		p := NewBalanceProof(tn.c, m, sig, []string{"replica1", "replica2"})
		if err := VerifyBalanceProof(tn.c, p); !errors.Is(err, ErrProofSignature) {
			t.Fatalf("got %v", err)
		}
	})
}

// An older proof stays valid forever, so a bridge compares indexes: a proof
// verifies only for the index it was signed at, and says which one.
func TestBalanceProofIndexIsWhatVerifies(t *testing.T) {
	tn := newFixedNet(t, "proof", 4, 3)
	old := sampleBalance()
	old.Index, old.Balance = 10, 1_000_000_000
	cur := old
	cur.Index, cur.Balance = 20, 0 // spent since
	pOld, pCur := balanceProof(tn, old, 0, 1), balanceProof(tn, cur, 1, 2)
	for _, p := range []*BalanceProof{pOld, pCur} {
		if err := VerifyBalanceProof(tn.c, p); err != nil {
			t.Fatal(err)
		}
	}
	mOld, _ := pOld.Message()
	mCur, _ := pCur.Message()
	if mOld.Index != 10 || mCur.Index != 20 || mOld.Index >= mCur.Index {
		t.Fatalf("indexes %d %d", mOld.Index, mCur.Index)
	}
	// Replaying the old proof as if it were current fails.
	replay := *pOld
	replay.Index = 20
	if err := VerifyBalanceProof(tn.c, &replay); err == nil {
		t.Fatal("old proof verified at a newer index")
	}
	replay.Digest = pCur.Digest
	replay.Balance, replay.BalanceUnits = "1000", "1000000000"
	if err := VerifyBalanceProof(tn.c, &replay); err == nil {
		t.Fatal("old signature verified with the current digest")
	}
}

func TestWithdrawalProof(t *testing.T) {
	tn := newFixedNet(t, "proof", 4, 3)
	v := loadVectors(t)
	c := v.Cases[v.find(t, "withdrawal")]
	m := eip712.Withdrawal{App: testApp, ID: mustHash(c.Message["id"]), Trader: common.HexToAddress(c.Message["trader"]),
		Token: c.Message["token"], Amount: mustUnits(c.Message["amount"]), Recipient: common.HexToAddress(c.Message["recipient"]),
		Index: mustUnits(c.Message["index"])}
	p := withdrawalProof(tn, m, 0, 1, 2)
	if p.Digest != c.Digest {
		t.Fatalf("digest %s, ethers %s", p.Digest, c.Digest)
	}
	if err := VerifyWithdrawalProof(tn.c, p); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(p)
	kind, bp, wp, err := ParseProof(raw)
	if err != nil || kind != KindWithdrawal || bp != nil || VerifyWithdrawalProof(tn.c, wp) != nil {
		t.Fatalf("parse: %v %v", kind, err)
	}
	cases := []struct {
		name   string
		tamper func(p *WithdrawalProof)
		want   error
	}{
		{"recipient", func(p *WithdrawalProof) { p.Recipient = tutorialBuyer.Hex() }, ErrProofDigest},
		{"id", func(p *WithdrawalProof) { p.ID = hex32([32]byte{1}) }, ErrProofDigest},
		{"trader", func(p *WithdrawalProof) { p.Trader = tutorialBuyer.Hex() }, ErrProofDigest},
		{"amount", func(p *WithdrawalProof) { p.Amount, p.AmountUnits = "1", "1000000" }, ErrProofDigest},
		{"amount text", func(p *WithdrawalProof) { p.Amount = "1" }, ErrProofAmountText},
		{"index", func(p *WithdrawalProof) { p.Index++ }, ErrProofDigest},
		{"app", func(p *WithdrawalProof) { p.App = "x" }, ErrProofApp},
		{"id malformed", func(p *WithdrawalProof) { p.ID = "0x01" }, ErrProofMalformed},
		{"threshold", func(p *WithdrawalProof) { p.Threshold = 0 }, ErrProofThreshold},
		{"signer", func(p *WithdrawalProof) { p.Signers = append(p.Signers, "bridge") }, ErrProofSigner},
	}
	for _, tc := range cases {
		q := *p
		q.Signers = append([]string(nil), p.Signers...)
		tc.tamper(&q)
		if err := VerifyWithdrawalProof(tn.c, &q); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseProofRefusesAmbiguity(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, `null`, `{"app":"orderbook"}`,
		`{"address":"0x00","extra":1}`,
		`{"id":"0x00","address":"0x00"}`, // a withdrawal proof has no address
		`{"address":"0x00"} {"address":"0x00"}`,
	} {
		if _, _, _, err := ParseProof([]byte(doc)); err == nil {
			t.Errorf("%s accepted", doc)
		}
	}
}
