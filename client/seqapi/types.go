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
// For ?after=N: up to a page of consecutive finalized batches N+1, N+2, …
// and Finalized, a proof whose Index is at least the last batch's index
// (the chaining hashes of the batches link the page to the proof). Batches
// is empty (not null) when nothing after N is finalized yet; Finalized is
// null when the app has no finalized batch at all.
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
	// PageBatchesMax is the most batches one finalized page carries.
	PageBatchesMax = 1000
)
