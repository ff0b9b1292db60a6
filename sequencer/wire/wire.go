// Package wire defines the sequencer's node-to-node messages and their
// binary encoding. It is a leaf package: the core decides what a message
// means, the transport moves bytes, and this package sits between them.
//
// Every message has a stateless ValidateBasic (sizes, lengths, bounds,
// well-formed fields) that Decode runs before returning, so the core only
// ever sees structurally valid messages (cometbft style). Whether a message
// is *acceptable* (right view, right leader, valid signatures, consistent
// hashes) is the core's business.
//
// The encoding is deterministic: one byte string per message value, fixed
// width big-endian integers, length-prefixed byte strings, presence bytes
// for optional fields, and Decode refuses trailing bytes, so
// Decode(Encode(m)) == m and Encode(Decode(b)) == b for every accepted b.
package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Bounds of the wire format. Each is enforced by ValidateBasic (and by
// Decode before allocating), so a peer cannot make a node allocate more
// than MaxMessageBytes for one message.
const (
	// MaxBatchBytes is the largest batch body (DESIGN §4: ≤ 1 MiB).
	MaxBatchBytes = 1 << 20
	// MaxAppBytes bounds an app name; apps are short identifiers.
	MaxAppBytes = 64
	// MaxNodes bounds the cluster size a signer bitmap can describe.
	MaxNodes = 256
	// MaxBitmapBytes is the size of a bitmap of MaxNodes nodes.
	MaxBitmapBytes = MaxNodes / 8
	// MaxBatchesPerMessage bounds the batches one message carries; pages and
	// posts are cut well below it by the core's own byte bounds.
	MaxBatchesPerMessage = 8192
	// MaxProofsPerMessage bounds the proofs one message carries.
	MaxProofsPerMessage = 1024
	// MaxAppsPerMessage bounds the apps one ViewState carries.
	MaxAppsPerMessage = 256
	// MaxMessageBytes bounds an encoded message: a page of batches (the
	// core cuts pages at a few MiB) plus one maximal batch plus headers.
	MaxMessageBytes = 16 << 20
	// SignatureSize is the size of a compressed BLS G2 signature; every
	// signature on the wire has it, including the simulator's fake ones.
	SignatureSize = 96
)

// Hash is a 32-byte keccak256 value.
type Hash = [32]byte

// Signature is a compressed BLS signature (or aggregate).
type Signature [SignatureSize]byte

// Bitmap names a set of nodes by their index in cluster order: bit i of
// byte i/8 (least significant first) is node i. Its canonical form has no
// trailing zero bytes.
type Bitmap []byte

// NewBitmap returns the bitmap of the given node indexes.
func NewBitmap(nodes ...int) Bitmap {
	var b Bitmap
	for _, n := range nodes {
		b = b.With(n)
	}
	return b
}

// With returns the bitmap with node i added. It panics on a node index
// outside [0, MaxNodes): node indexes come from the cluster file, which the
// caller has already bounded.
func (b Bitmap) With(i int) Bitmap {
	if i < 0 || i >= MaxNodes {
		panic(fmt.Sprintf("wire: node index %d out of range", i))
	}
	out := make(Bitmap, max(len(b), i/8+1))
	copy(out, b)
	out[i/8] |= 1 << (i % 8)
	return out
}

// Has reports whether node i is in the set.
func (b Bitmap) Has(i int) bool {
	if i < 0 || i/8 >= len(b) {
		return false
	}
	return b[i/8]&(1<<(i%8)) != 0
}

// Count is the number of nodes in the set.
func (b Bitmap) Count() int {
	c := 0
	for _, x := range b {
		for ; x != 0; x &= x - 1 {
			c++
		}
	}
	return c
}

// Nodes lists the node indexes in the set, ascending.
func (b Bitmap) Nodes() []int {
	var out []int
	for i := 0; i < len(b)*8; i++ {
		if b.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Max is the highest node index in the set, or -1 for the empty set.
func (b Bitmap) Max() int {
	for i := len(b)*8 - 1; i >= 0; i-- {
		if b.Has(i) {
			return i
		}
	}
	return -1
}

// validate checks the canonical form: bounded, non-empty, no trailing zero
// byte (so one set has exactly one encoding).
func (b Bitmap) validate() error {
	if len(b) == 0 {
		return errors.New("empty signer bitmap")
	}
	if len(b) > MaxBitmapBytes {
		return fmt.Errorf("signer bitmap of %d bytes, limit %d", len(b), MaxBitmapBytes)
	}
	if b[len(b)-1] == 0 {
		return errors.New("signer bitmap has a trailing zero byte")
	}
	return nil
}

// ProofKind says which of the two signed messages a Proof aggregates.
type ProofKind uint8

// The two kinds of quorum proof.
const (
	// KindLock aggregates Lock(app, view, index, chainingHash) signatures.
	KindLock ProofKind = 1
	// KindFinalize aggregates Finalize(app, view, index, chainingHash)
	// signatures: every batch up to Index is final.
	KindFinalize ProofKind = 2
)

func (k ProofKind) String() string {
	switch k {
	case KindLock:
		return "lock"
	case KindFinalize:
		return "finalize"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Proof is a quorum certificate: the aggregate BLS signature of the nodes
// in Signers over the EIP-712 digest of Lock or Finalize(app, View, Index,
// ChainingHash). The app is not repeated here: every message carrying a
// proof names its app, and the core checks the signature under that app.
type Proof struct {
	Kind         ProofKind
	View         uint64
	Index        uint64
	ChainingHash Hash
	Signers      Bitmap
	Signature    Signature
}

// Clone returns a deep copy of p (nil for nil): a proof kept while the
// message that carried it is reused must not share its signer bitmap.
func (p *Proof) Clone() *Proof {
	if p == nil {
		return nil
	}
	c := *p
	c.Signers = append(Bitmap(nil), p.Signers...)
	return &c
}

// ValidateBasic checks the proof's shape (not its signature).
func (p *Proof) ValidateBasic() error {
	if p.Kind != KindLock && p.Kind != KindFinalize {
		return fmt.Errorf("proof: unknown kind %d", p.Kind)
	}
	if p.Index == 0 {
		return errors.New("proof: index 0 (nothing to prove)")
	}
	if err := p.Signers.validate(); err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	return nil
}

// Batch is one sequenced batch as it travels between nodes. Its hash and
// chaining hash are not sent: every receiver recomputes them from the
// timestamp and body, so a peer cannot make a node store a hash that does
// not match the bytes.
type Batch struct {
	// Index is the position in the app's sequence, from 1.
	Index uint64
	// Timestamp is the leader's stamp, unix milliseconds.
	Timestamp uint64
	// Origin is the cluster index of the node the batch was submitted to,
	// and Seq that node's counter for it: together they let the origin
	// recognise its own batches and the leader drop duplicate posts. They
	// are bookkeeping, not part of the hash.
	Origin uint16
	Seq    uint64
	// Body is the batch bytes exactly as submitted.
	Body []byte
}

// PostedBatch is an initialized batch a node posts to the leader.
type PostedBatch struct {
	// Seq is the posting node's counter for the batch (≥ 1).
	Seq  uint64
	Body []byte
}

// Tip names the end of a node's log for one app: its last index and the
// chaining hash there (zero hash at index 0).
type Tip struct {
	Index        uint64
	ChainingHash Hash
}

// LockTarget asks for Lock signatures over (Index, ChainingHash).
type LockTarget struct {
	Index        uint64
	ChainingHash Hash
}

// SignedTarget is one node's signature over Lock or Finalize(app, view,
// Index, ChainingHash).
type SignedTarget struct {
	Index        uint64
	ChainingHash Hash
	Signature    Signature
}

// DisputeReason says why a node disputes the leader. It is informational
// (it is not signed): a dispute certificate only needs enough signers.
type DisputeReason uint8

// Dispute reasons.
const (
	ReasonSilent     DisputeReason = 1 // the leader did not answer in time
	ReasonCensorship DisputeReason = 2 // the node's own batches were not sequenced in time
	ReasonNoProgress DisputeReason = 3 // batches wait and finalization made no progress
	ReasonMisbehaved DisputeReason = 4 // the leader sent something provably wrong
)

func (r DisputeReason) String() string {
	switch r {
	case ReasonSilent:
		return "silent"
	case ReasonCensorship:
		return "censorship"
	case ReasonNoProgress:
		return "no-progress"
	case ReasonMisbehaved:
		return "misbehaved"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Certificate proves that more than N/3 nodes disputed the leader of View:
// an aggregate of their Dispute signatures. It moves every node to View+1.
type Certificate struct {
	View      uint64
	Signers   Bitmap
	Signature Signature
}

// ValidateBasic checks the certificate's shape.
func (c *Certificate) ValidateBasic() error {
	if err := c.Signers.validate(); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	return nil
}

// ValidateApp checks an app name: 1 to MaxAppBytes characters from
// [A-Za-z0-9._-]. Apps appear in URLs and store keys, so the alphabet is
// small on purpose.
func ValidateApp(app string) error {
	if app == "" {
		return errors.New("empty app name")
	}
	if len(app) > MaxAppBytes {
		return fmt.Errorf("app name of %d bytes, limit %d", len(app), MaxAppBytes)
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("app name %q: character %q not allowed (use A-Z a-z 0-9 . _ -)", app, c)
		}
	}
	return nil
}

// ValidateBody checks a batch body: at most MaxBatchBytes, valid UTF-8.
func ValidateBody(body []byte) error {
	if len(body) > MaxBatchBytes {
		return fmt.Errorf("batch of %d bytes, limit %d", len(body), MaxBatchBytes)
	}
	if !utf8.Valid(body) {
		return errors.New("batch is not valid UTF-8")
	}
	return nil
}
