package bridge

import (
	"fmt"
	"testing"
)

// TestWithdrawGasBySigners measures an ETH withdrawal's gas for clusters of
// growing size, signed by the threshold and by every replica, and prints
// the table docs/bridge.md quotes (go test -v -run GasBySigners ./bridge/).
// Each signer adds four cold storage reads (its key) and a G1ADD; the
// pairing and hash to G2 are fixed.
func TestWithdrawGasBySigners(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a bridge per cluster size")
	}
	f := newFixture(t, 3)
	// An account that exists: paying a new one adds 25000 gas whatever
	// the proof.
	to := f.owner.Address()
	type row struct{ n, signers, gas int }
	var rows []row
	for _, n := range []int{3, 4, 7, 10, 16} {
		c, sks := testCluster(t, f.c.ChainID, n)
		k, _, err := Deploy(f.ctx, f.owner, c, []Listing{{Symbol: "ETH"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.DepositETH(f.ctx, f.owner, f.owner.Address(), mustBig("10000000000000000000")); err != nil {
			t.Fatal(err)
		}
		g := &fixture{t: t, ctx: f.ctx, c: c, sks: sks}
		for _, signers := range []int{c.ReplicaThreshold(), n} {
			idx := make([]int, signers)
			for i := range idx {
				idx[i] = i
			}
			m := g.withdrawal(fmt.Sprintf("gas %d/%d", signers, n), "ETH", 1_000_000, to)
			cl, err := NewClaim(c, g.proof(m, idx...))
			if err != nil {
				t.Fatal(err)
			}
			r, err := k.Withdraw(f.ctx, f.owner, cl)
			if err != nil {
				t.Fatalf("%d of %d: %v", signers, n, err)
			}
			rows = append(rows, row{n, signers, int(r.GasUsed)})
		}
	}
	t.Logf("%-9s %-8s %s", "replicas", "signers", "gas")
	for _, r := range rows {
		t.Logf("%-9d %-8d %d", r.n, r.signers, r.gas)
		if r.n == 3 && r.gas > gasGoal {
			t.Errorf("3 replicas, %d signers: %d gas, the goal is %d", r.signers, r.gas, gasGoal)
		}
	}
	// More signers never cost less.
	for i := 1; i < len(rows); i++ {
		if rows[i].signers > rows[i-1].signers && rows[i].gas < rows[i-1].gas {
			t.Errorf("%d signers cost %d gas, fewer than %d signers (%d)", rows[i].signers, rows[i].gas, rows[i-1].signers, rows[i-1].gas)
		}
	}
}
