// Package seqapi holds the JSON shapes of the sequencer node's HTTP API
// (DESIGN §4). It is a leaf package: the node serves these types and the
// client SDK decodes them, so neither imports the other.
//
// Hex values (hashes, signatures) are 0x-prefixed lowercase hex. Indexes
// start at 1 (index 0 is "nothing yet", whose chaining hash is 32 zero
// bytes). Timestamps are unix milliseconds stamped by the leader.
package seqapi

// Batch is one finalized batch as served by
// GET /node/{app}/batches/finalized.
type Batch struct {
	// Index is the batch's position in its app's sequence, from 1.
	Index uint64 `json:"index"`
	// Timestamp is the leader's stamp, unix milliseconds, never decreasing
	// along the sequence.
	Timestamp uint64 `json:"timestamp"`
	// Body is the batch bytes exactly as PUT (valid UTF-8, so a JSON string
	// carries them unchanged).
	Body string `json:"body"`
	// Hash is keccak256(uint64be(timestamp) || body).
	Hash string `json:"hash"`
	// ChainingHash is keccak256(previous chaining hash || Hash).
	ChainingHash string `json:"chaining_hash"`
}

// FinalizedProof is the aggregated BLS signature of at least a quorum of
// nodes over the EIP-712 digest of
// Finalize(string app,uint64 view,uint64 index,bytes32 chainingHash).
// It finalizes every batch of the app up to Index.
type FinalizedProof struct {
	Index        uint64 `json:"index"`
	ChainingHash string `json:"chaining_hash"`
	View         uint64 `json:"view"`
	// Signature is the 96-byte aggregate BLS signature.
	Signature string `json:"signature"`
	// Signers are node ids from the cluster file, in cluster order.
	Signers []string `json:"signers"`
}

// FinalizedPage answers GET /node/{app}/batches/finalized?after=N and
// GET /node/{app}/batches/finalized/last.
//
// For ?after=N: consecutive finalized batches N+1, N+2, … (up to
// PageBatchesMax, about PageBytesMax of bodies, longer only to reach the
// next proof) and Finalized, the finalize proof of the LAST batch of the
// page: Finalized.Index equals the last batch's index and
// Finalized.ChainingHash its chaining hash, so a page verifies on its own
// given the chaining hash of batch N. When nothing after N is final yet,
// Batches is empty (never null) and Finalized is the app's latest proof
// (null when nothing of the app is final).
//
// For /last: Batches holds just the last finalized batch (or is empty) and
// Finalized its proof.
type FinalizedPage struct {
	Batches   []Batch         `json:"batches"`
	Finalized *FinalizedProof `json:"finalized"`
}

// AppState is one app's progress on a node.
type AppState struct {
	// Pending is how many batches this node holds that are not sequenced
	// yet (initialized).
	Pending int `json:"pending"`
	// Sequenced, Locked, Finalized are the highest indexes this node knows
	// in each state. Invariant: Finalized <= Locked <= Sequenced.
	Sequenced uint64 `json:"sequenced"`
	Locked    uint64 `json:"locked"`
	Finalized uint64 `json:"finalized"`
}

// NodeState answers GET /node/state.
type NodeState struct {
	// Node is this node's id.
	Node string `json:"node"`
	// View is the current view; Leader is the id of its leader
	// (node view mod N in cluster order).
	View   uint64 `json:"view"`
	Leader string `json:"leader"`
	// Apps maps an app name to its indexes on this node.
	Apps map[string]AppState `json:"apps"`
	// Work counts what the node did since it started, so a benchmark can
	// report BLS and disk work per finalized index. Not part of the
	// DESIGN contract: absent on nodes that do not count.
	Work *NodeWork `json:"work,omitempty"`
}

// NodeWork is a node's work since start.
type NodeWork struct {
	BLSSigns             uint64 `json:"bls_signs"`
	BLSVerifies          uint64 `json:"bls_verifies"`
	BLSAggregates        uint64 `json:"bls_aggregates"`
	BLSAggregateVerifies uint64 `json:"bls_aggregate_verifies"`
	// BLSBatchVerifies counts multi-pairings that checked several
	// aggregates at once (each also counts in BLSAggregateVerifies).
	BLSBatchVerifies uint64 `json:"bls_batch_verifies"`
	// StoreSaves is the number of durable (fsynced) store transactions;
	// StoreSaveMs the time spent in them.
	StoreSaves       uint64  `json:"store_saves"`
	StoreSaveMs      float64 `json:"store_save_ms"`
	BatchesFinalized uint64  `json:"batches_finalized"`
	// Rounds is the number of finalize proofs the node applied (one per
	// round); StoreSaves / Rounds is its fsyncs per round.
	Rounds uint64 `json:"rounds"`
}

// Ready answers GET /node/ready: 200 with Ready true once the node runs
// its protocol loop and serves requests, 503 otherwise.
type Ready struct {
	Ready bool   `json:"ready"`
	Node  string `json:"node"`
}

// Accepted answers a PUT /node/{app}/batches that the node took.
type Accepted struct {
	Status string `json:"status"` // "accepted"
}

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Error string `json:"error"`
}

// Limits of the API that clients may want to check before sending.
const (
	// BatchBytesMax is the largest batch body a node accepts (DESIGN §4):
	// past it the answer is 413.
	BatchBytesMax = 1 << 20
	// PageBatchesMax and PageBytesMax bound a finalized page (a page may
	// run past them only to end at a finalize proof; rounds are bounded so
	// that stays small).
	PageBatchesMax = 1000
	PageBytesMax   = 4 << 20
)
