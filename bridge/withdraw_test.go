package bridge

import (
	"math/big"
	"testing"

	bls12381 "github.com/consensys/gnark-crypto/ecc/bls12-381"
	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
)

// gasGoal is the bound on a withdrawal's gas with 3 replicas.
const gasGoal = 350_000

func TestWithdrawPaysOnceExactlyWhatWasSigned(t *testing.T) {
	f := newFixture(t, 3)
	f.fundBridge()
	to := common.HexToAddress("0x00000000000000000000000000000000000b0b01")

	// 1.5 ETH (18 decimals), 250 USDT (6), 0.5 DAI (18), 3.25 CENT (2).
	cases := []struct {
		token string
		units uint64
		paid  *big.Int
		bal   func() *big.Int
	}{
		{"ETH", 1_500_000, mustBig("1500000000000000000"), func() *big.Int { b, _ := f.chain.Client.BalanceAt(f.ctx, to, nil); return b }},
		{"USDT", 250_000_000, mustBig("250000000"), func() *big.Int { b, _ := f.usdt.BalanceOf(f.ctx, to); return b }},
		{"DAI", 500_000, mustBig("500000000000000000"), func() *big.Int { b, _ := f.dai.BalanceOf(f.ctx, to); return b }},
		{"CENT", 3_250_000, mustBig("325"), func() *big.Int { b, _ := f.cents.BalanceOf(f.ctx, to); return b }},
	}
	for _, tc := range cases {
		p := f.proof(f.withdrawal("pay "+tc.token, tc.token, tc.units, to), 0, 1, 2)
		cl, err := NewClaim(f.c, p)
		if err != nil {
			t.Fatal(err)
		}
		before := tc.bal()
		r, err := f.bridge.Withdraw(f.ctx, f.owner, cl)
		if err != nil {
			t.Fatalf("%s: %v", tc.token, err)
		}
		if got := new(big.Int).Sub(tc.bal(), before); got.Cmp(tc.paid) != 0 {
			t.Fatalf("%s: recipient got %s, want %s", tc.token, got, tc.paid)
		}
		t.Logf("withdraw %s: gas %d", tc.token, r.GasUsed)
		if r.GasUsed > gasGoal {
			t.Errorf("withdraw %s used %d gas, the goal is at most %d", tc.token, r.GasUsed, gasGoal)
		}
		if paid, _ := f.bridge.Paid(f.ctx, cl.Withdrawal.Id); !paid {
			t.Fatalf("%s: id not marked paid", tc.token)
		}
		// The same id never pays twice.
		if _, err := f.bridge.Withdraw(f.ctx, f.owner, cl); RevertReason(err) != "withdrawal already paid" {
			t.Fatalf("%s: replay: %v", tc.token, err)
		}
	}
}

// Every way a claim can be wrong reverts with its reason and pays nothing.
func TestWithdrawReverts(t *testing.T) {
	f := newFixture(t, 3)
	f.fundBridge()
	to := common.HexToAddress("0x00000000000000000000000000000000000b0b02")
	m := f.withdrawal("reverts", "USDT", 10_000_000, to)
	good := func() *Claim {
		cl, err := NewClaim(f.c, f.proof(m, 0, 2))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	otherChain := m
	otherApp := m
	otherApp.App = "spot2"
	cases := []struct {
		name   string
		claim  func() *Claim
		reason string
	}{
		{"tampered amount", func() *Claim { c := good(); c.Withdrawal.Amount = big.NewInt(20_000_000); return c }, "BLS signature does not verify"},
		{"tampered trader", func() *Claim { c := good(); c.Withdrawal.Trader = to; return c }, "BLS signature does not verify"},
		{"tampered recipient", func() *Claim { c := good(); c.Withdrawal.Recipient = f.owner.Address(); return c }, "BLS signature does not verify"},
		{"tampered token", func() *Claim { c := good(); c.Withdrawal.Token = "DAI"; return c }, "BLS signature does not verify"},
		{"tampered index", func() *Claim { c := good(); c.Withdrawal.Index++; return c }, "BLS signature does not verify"},
		{"tampered id", func() *Claim { c := good(); c.Withdrawal.Id[0] ^= 1; return c }, "BLS signature does not verify"},
		{"signer bitmap of other replicas", func() *Claim { c := good(); c.Signers = big.NewInt(0b011); return c }, "BLS signature does not verify"},
		{"non-member signer", func() *Claim { c := good(); c.Signers = big.NewInt(0b1101); return c }, "signer is not a replica"},
		{"fewer signers than the threshold", func() *Claim {
			cl, err := ClaimOf(f.c, f.proof(m, 1))
			if err != nil {
				t.Fatal(err)
			}
			return cl
		}, "fewer signers than the threshold"},
		{"no signers", func() *Claim { c := good(); c.Signers = big.NewInt(0); return c }, "fewer signers than the threshold"},
		{"signature not on the curve", func() *Claim { c := good(); c.Signature[255] ^= 1; return c }, "signature is not a G2 point of the subgroup"},
		{"signature not in the subgroup", func() *Claim { c := good(); c.Signature = g2OutsideSubgroup(t); return c }, "signature is not a G2 point of the subgroup"},
		{"signature coordinate not padded", func() *Claim { c := good(); c.Signature[0] = 1; return c }, "signature is not a G2 point of the subgroup"},
		{"signature compressed", func() *Claim { c := good(); c.Signature = c.Signature[:96]; return c }, "signature must be 256 bytes (uncompressed G2)"},
		{"proof for another chain id", func() *Claim {
			cl, err := ClaimOf(f.c, f.proofIn(eip712.NewDomain(1), otherChain, 0, 1, 2))
			if err != nil {
				t.Fatal(err)
			}
			return cl
		}, "BLS signature does not verify"},
		{"proof for another app", func() *Claim {
			cl, err := ClaimOf(f.c, f.proof(otherApp, 0, 1, 2))
			if err != nil {
				t.Fatal(err)
			}
			return cl
		}, "BLS signature does not verify"},
		{"token not listed", func() *Claim { c := good(); c.Withdrawal.Token = "BTC"; return c }, "token is not listed"},
		{"amount that does not convert", func() *Claim {
			cl, err := NewClaim(f.c, f.proof(f.withdrawal("dust", "CENT", 1_234_567, to), 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			return cl
		}, "amount does not convert to the token's decimals"},
	}
	before, _ := f.usdt.BalanceOf(f.ctx, f.bridge.Address)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.claim()
			err := f.bridge.CallWithdraw(f.ctx, f.owner.Address(), cl)
			if got := RevertReason(err); got != tc.reason {
				t.Fatalf("call: reverted with %q (%v), want %q", got, err, tc.reason)
			}
			// Sent as a transaction, it is refused the same way.
			if _, err := f.bridge.Withdraw(f.ctx, f.owner, cl); RevertReason(err) != tc.reason {
				t.Fatalf("transaction: %v, want revert %q", err, tc.reason)
			}
		})
	}
	if after, _ := f.usdt.BalanceOf(f.ctx, f.bridge.Address); after.Cmp(before) != 0 {
		t.Fatalf("the bridge paid out %s USDT on refused claims", new(big.Int).Sub(before, after))
	}
	// The untampered claim still pays.
	if _, err := f.bridge.Withdraw(f.ctx, f.owner, good()); err != nil {
		t.Fatal(err)
	}
}

// g2OutsideSubgroup returns a point on the G2 curve outside the prime-order
// subgroup, EIP-2537 encoded: x = 1, 2, … until x³ + 4(1+u) is a square.
func g2OutsideSubgroup(t *testing.T) []byte {
	t.Helper()
	var p bls12381.G2Affine
	var b, rhs bls12381.E2
	b.SetString("4", "4")
	for x := 1; ; x++ {
		p.X.SetString(big.NewInt(int64(x)).String(), "0")
		rhs.Square(&p.X).Mul(&rhs, &p.X).Add(&rhs, &b)
		if rhs.Legendre() != 1 {
			continue
		}
		p.Y.Sqrt(&rhs)
		if !p.IsOnCurve() {
			t.Fatal("constructed point is not on the curve")
		}
		if p.IsInSubGroup() {
			continue
		}
		out := make([]byte, G2Size)
		for i, e := range [][48]byte{p.X.A0.Bytes(), p.X.A1.Bytes(), p.Y.A0.Bytes(), p.Y.A1.Bytes()} {
			fpPad(out[i*FpSize:], e[:])
		}
		return out
	}
}

func mustBig(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

// Deposits emit the credited base units and refuse what does not convert.
func TestDepositConversion(t *testing.T) {
	f := newFixture(t, 3)
	acct := common.HexToAddress("0x00000000000000000000000000000000000a0a01")
	for _, tok := range []*Token{f.usdt, f.dai, f.cents} {
		if _, err := tok.Mint(f.ctx, f.owner, f.owner.Address(), mustBig("1000000000000000000000000")); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.Approve(f.ctx, f.owner, f.bridge.Address, mustBig("1000000000000000000000000")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.bridge.DepositETH(f.ctx, f.owner, acct, mustBig("1000000000001")); RevertReason(err) != "amount does not convert to the orderbook's 6 decimals" {
		t.Fatalf("ETH dust: %v", err)
	}
	if _, err := f.bridge.DepositToken(f.ctx, f.owner, f.dai.Address, acct, mustBig("1")); RevertReason(err) != "amount does not convert to the orderbook's 6 decimals" {
		t.Fatalf("DAI dust: %v", err)
	}
	if _, err := f.bridge.DepositETH(f.ctx, f.owner, acct, big.NewInt(0)); RevertReason(err) != "amount is zero" {
		t.Fatalf("zero: %v", err)
	}
	if _, err := f.bridge.DepositETH(f.ctx, f.owner, common.Address{}, big.NewInt(1e12)); RevertReason(err) != "account is the zero address" {
		t.Fatalf("zero account: %v", err)
	}
	if _, err := f.bridge.DepositToken(f.ctx, f.owner, f.dai.Address, acct, mustBig("100000000000000000000000000000000")); RevertReason(err) != "amount above the orderbook's maximum" {
		t.Fatalf("too large: %v", err)
	}
	other, err := DeployToken(f.ctx, f.owner, "Other", "OTH", 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.bridge.DepositToken(f.ctx, f.owner, other.Address, acct, big.NewInt(1)); RevertReason(err) != "token is not listed" {
		t.Fatalf("unlisted: %v", err)
	}

	want := []struct {
		token common.Address
		units uint64
	}{}
	r, err := f.bridge.DepositETH(f.ctx, f.owner, acct, mustBig("2500000000000000000")) // 2.5 ETH
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, struct {
		token common.Address
		units uint64
	}{common.Address{}, 2_500_000})
	t.Logf("deposit ETH: gas %d", r.GasUsed)
	for _, d := range []struct {
		tok   *Token
		amt   string
		units uint64
	}{{f.usdt, "7000000", 7_000_000}, {f.dai, "1000000000000", 1}, {f.cents, "199", 1_990_000}} {
		r, err := f.bridge.DepositToken(f.ctx, f.owner, d.tok.Address, acct, mustBig(d.amt))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("deposit token: gas %d", r.GasUsed)
		want = append(want, struct {
			token common.Address
			units uint64
		}{d.tok.Address, d.units})
	}
	head, err := f.chain.Client.BlockNumber(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := f.bridge.Deposits(f.ctx, 0, head)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != len(want) {
		t.Fatalf("%d deposit events, want %d", len(deps), len(want))
	}
	for i, d := range deps {
		if d.Account != acct || d.Token != want[i].token || d.Units != want[i].units || d.ID != uint64(i+1) {
			t.Fatalf("deposit %d: %+v, want token %s units %d id %d", i, d, want[i].token.Hex(), want[i].units, i+1)
		}
	}
}
