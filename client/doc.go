// Package client is seqbook's Go SDK: what a wallet script, a bridge or any
// other program needs to talk to a seqbook network without trusting any one
// server in it.
//
//   - Sequencer reads an app's finalized batches from any sequencer node and
//     checks everything itself (batch hashes, the chaining hash, the
//     aggregated BLS finality signature of a node quorum, the order of
//     timestamps) before handing a batch out; a node that fails or lies is
//     skipped for the next one. It also submits batches (Send, SendAndWait).
//   - Orderbook talks to one replica: it builds and signs EIP-712 orders,
//     cancels and withdrawals, and reads balances, orders, trades and depth.
//   - BalanceProof and WithdrawalProof are the aggregator's quorum proofs
//     (DESIGN §6); VerifyBalanceProof and VerifyWithdrawalProof check them
//     offline against a cluster file, which is all a bridge needs.
//
// The package imports only the leaf packages under client/ (amount, bls,
// cluster, eip712, ethsig, seqapi, obapi), never a server package, so
// programs outside the module can depend on it. See docs/client.md.
package client
