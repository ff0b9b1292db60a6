package main

import (
	"fmt"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

// blsCosts measures, on one core, what a sequencer round's fixed cost is
// made of: one BLS signature, and one check of two quorum proofs (three
// signers each) in one multi-pairing, what a follower does for the lock
// proof it finalizes and the newest finalize proof. This CPU's speed at
// these has varied by a third from day to day, so benchmark figures of
// different days compare only with these beside them.
func blsCosts(d time.Duration) (sign, check2 time.Duration, err error) {
	keys := make([]*bls.SecretKey, 3)
	pks := make([]*bls.PublicKey, 3)
	for i := range keys {
		if keys[i], err = bls.GenerateKey(); err != nil {
			return 0, 0, err
		}
		pks[i] = keys[i].PublicKey()
	}
	digests := [][32]byte{eip712.Keccak256([]byte("seqbook bench lock")), eip712.Keccak256([]byte("seqbook bench finalize"))}
	sigs := make([]*bls.Signature, 2)
	for j, dg := range digests {
		parts := make([]*bls.Signature, len(keys))
		for i, k := range keys {
			parts[i] = k.Sign(dg)
		}
		sigs[j] = bls.Aggregate(parts)
	}
	per := func(op func() bool) (time.Duration, error) {
		n, start := 0, time.Now()
		for time.Since(start) < d || n == 0 {
			if !op() {
				return 0, fmt.Errorf("BLS self-test failed")
			}
			n++
		}
		return time.Since(start) / time.Duration(n), nil
	}
	if sign, err = per(func() bool { return keys[0].Sign(digests[0]) != nil }); err != nil {
		return 0, 0, err
	}
	check2, err = per(func() bool {
		return bls.VerifyAggregates(sigs, [][]*bls.PublicKey{pks, pks}, digests)
	})
	return sign, check2, err
}

// printBLSCosts prints blsCosts on a line starting with prefix.
func printBLSCosts(prefix string) {
	sign, check2, err := blsCosts(300 * time.Millisecond)
	if err != nil {
		fmt.Printf("%s: BLS on this machine: %v\n", prefix, err)
		return
	}
	fmt.Printf("%s: BLS on this machine (one core): a signature %d µs, two quorum proofs checked together %d µs (a round costs each node that votes two signatures and about one such check; on one host a quorum votes)\n",
		prefix, sign.Microseconds(), check2.Microseconds())
}
