package client

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/seqapi"
)

// Batch is one batch whose place in an app's finalized sequence has been
// verified: its hash, its chaining hash and a node quorum's finality
// signature over a chaining hash that covers it.
type Batch struct {
	// Index is the batch's position in the app's sequence, from 1.
	Index uint64
	// Timestamp is the leader's stamp, unix milliseconds.
	Timestamp uint64
	// Body is the batch bytes exactly as sent.
	Body []byte
	// Hash is keccak256(uint64be(Timestamp) || Body).
	Hash [32]byte
	// ChainingHash is keccak256(chaining hash of Index-1 || Hash).
	ChainingHash [32]byte
}

// FinalityProof is a node quorum's aggregate BLS signature over
// Finalize(app, view, index, chainingHash): every batch of the app up to
// Index is final, and the chain up to it hashes to ChainingHash.
type FinalityProof struct {
	App          string
	Index        uint64
	ChainingHash [32]byte
	View         uint64
	Signature    *bls.Signature
	// Signers are node ids from the cluster file.
	Signers []string
}

// Verify checks the proof's signature against the cluster's node keys: the
// signers are distinct nodes of the cluster, at least a quorum, and their
// aggregate signature verifies on the EIP-712 digest of the Finalize
// message.
func (p *FinalityProof) Verify(c *cluster.Cluster) error {
	digest := c.Domain.Digest(&eip712.Finalize{App: p.App, View: p.View, Index: p.Index, ChainingHash: p.ChainingHash})
	if err := c.VerifyNodeQuorum(digest, p.Signature, p.Signers); err != nil {
		return fmt.Errorf("%w at index %d: %v", ErrFinalitySignature, p.Index, err)
	}
	return nil
}

// Page is a verified run of consecutive finalized batches.
type Page struct {
	// Node is the id of the node that served it. Nothing in the page rests
	// on trusting it.
	Node string
	// Batches are consecutive, starting right after the index asked for.
	// Empty when nothing after it is finalized yet.
	Batches []Batch
	// Proof finalizes the last batch (its Index and ChainingHash are the
	// last batch's). Nil when Batches is empty.
	Proof *FinalityProof
}

// Errors of page verification. Each is wrapped with the details (index,
// expected and served values). A node that answers with one of them is
// faulty or lying, and a Sequencer skips it.
var (
	ErrMalformedPage     = errors.New("malformed page")
	ErrNotContiguous     = errors.New("batches are not contiguous")
	ErrBatchHash         = errors.New("batch hash does not match its timestamp and body")
	ErrChainingHash      = errors.New("chaining hash does not extend the previous one")
	ErrTimestampOrder    = errors.New("batch timestamp decreases")
	ErrNoProof           = errors.New("batches come without a finality proof")
	ErrProofMismatch     = errors.New("finality proof does not match the batches")
	ErrFinalitySignature = errors.New("finality signature does not verify")
	ErrWithheld          = errors.New("node claims batches are finalized but does not serve them")
)

// chainVerifier checks served pages against a starting point (after, prev)
// without network or clock, so the checks are the same in the Sequencer,
// in tests and under fuzzing. Pages are added in order; result says
// whether a finality proof covering the batches seen so far has been
// reached.
type chainVerifier struct {
	c     *cluster.Cluster
	app   string
	after uint64
	prev  [32]byte
	// lastTS is the timestamp of batch `after` when known (checkTS).
	lastTS  uint64
	checkTS bool

	// batches passed the hash and chaining checks but are not proven final
	// until a proof at or beyond them is checked. Invariant: batches[i] has
	// Index after+1+i.
	batches []Batch
	tip     [32]byte // chaining hash of the last batch (prev when none)
	// proofs are the decoded (not yet verified) proofs beyond `after`, at
	// most one per added page.
	proofs []*FinalityProof
}

func newChainVerifier(c *cluster.Cluster, app string, after uint64, prev [32]byte, prevTS uint64, checkTS bool) *chainVerifier {
	return &chainVerifier{c: c, app: app, after: after, prev: prev, tip: prev, lastTS: prevTS, checkTS: checkTS}
}

// tipIndex is the index of the last checked batch.
func (v *chainVerifier) tipIndex() uint64 { return v.after + uint64(len(v.batches)) }

// pendingProof reports whether a proof lies beyond the batches seen: the
// node says more is finalized, so the next page must bring batches.
func (v *chainVerifier) pendingProof() bool {
	for _, p := range v.proofs {
		if p.Index > v.tipIndex() {
			return true
		}
	}
	return false
}

// add checks one served page: its shape, then every batch's index, hash,
// chaining hash and timestamp against the chain so far.
func (v *chainVerifier) add(p *seqapi.FinalizedPage) error {
	// No batch-count bound here: a node may run a page past
	// seqapi.PageBatchesMax to end it at a finalize proof. The answer's byte
	// bound (WithAnswerBytesMax) is what limits a page.
	if p.Finalized != nil {
		proof, err := v.decodeProof(p.Finalized)
		if err != nil {
			return err
		}
		// A proof at or before `after` says nothing about what follows.
		if proof.Index > v.after {
			v.proofs = append(v.proofs, proof)
		}
	} else if len(p.Batches) > 0 {
		return ErrNoProof
	}
	for i := range p.Batches {
		if err := v.addBatch(&p.Batches[i]); err != nil {
			return err
		}
	}
	// A proof beyond the batches with nothing served after them is a claim
	// the node refuses to back.
	if len(p.Batches) == 0 && v.pendingProof() {
		return fmt.Errorf("%w: a proof reaches beyond index %d but the page after it is empty", ErrWithheld, v.tipIndex())
	}
	return nil
}

func (v *chainVerifier) decodeProof(f *seqapi.FinalizedProof) (*FinalityProof, error) {
	ch, err := parseHash32("finalized.chaining_hash", f.ChainingHash)
	if err != nil {
		return nil, err
	}
	sig, err := bls.SignatureFromHex(f.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: finalized.signature: %v", ErrMalformedPage, err)
	}
	// More signers than nodes cannot be valid; refusing early bounds the work.
	if len(f.Signers) > len(v.c.Nodes) {
		return nil, fmt.Errorf("%w: finalized.signers lists %d ids, the cluster has %d nodes", ErrMalformedPage, len(f.Signers), len(v.c.Nodes))
	}
	return &FinalityProof{
		App: v.app, Index: f.Index, ChainingHash: ch, View: f.View,
		Signature: sig, Signers: append([]string(nil), f.Signers...),
	}, nil
}

func (v *chainVerifier) addBatch(sb *seqapi.Batch) error {
	want := v.tipIndex() + 1
	if sb.Index != want {
		return fmt.Errorf("%w: expected index %d, got %d", ErrNotContiguous, want, sb.Index)
	}
	hash, err := parseHash32(fmt.Sprintf("batch %d hash", sb.Index), sb.Hash)
	if err != nil {
		return err
	}
	chaining, err := parseHash32(fmt.Sprintf("batch %d chaining_hash", sb.Index), sb.ChainingHash)
	if err != nil {
		return err
	}
	body := []byte(sb.Body)
	if got := BatchHash(sb.Timestamp, body); got != hash {
		return fmt.Errorf("%w: batch %d: served %s, computed %s", ErrBatchHash, sb.Index, hex32(hash), hex32(got))
	}
	if got := NextChainingHash(v.tip, hash); got != chaining {
		return fmt.Errorf("%w: batch %d: served %s, computed %s", ErrChainingHash, sb.Index, hex32(chaining), hex32(got))
	}
	if v.checkTS && sb.Timestamp < v.lastTS {
		return fmt.Errorf("%w: batch %d at %d ms after %d ms", ErrTimestampOrder, sb.Index, sb.Timestamp, v.lastTS)
	}
	v.lastTS, v.checkTS = sb.Timestamp, true
	v.tip = chaining
	v.batches = append(v.batches, Batch{Index: sb.Index, Timestamp: sb.Timestamp, Body: body, Hash: hash, ChainingHash: chaining})
	return nil
}

// result returns the verified page when a proof covering checked batches
// has been reached (done), or done=false when the only proofs lie beyond
// the batches seen so far and another page must be read. Batches past the
// highest covering proof are dropped: nothing vouches for them.
func (v *chainVerifier) result(node string) (page Page, done bool, err error) {
	var best *FinalityProof
	for _, p := range v.proofs {
		if p.Index > v.tipIndex() {
			continue
		}
		// Every covering proof must agree with the chain: a proof and a
		// batch list that disagree mean the node lied about one of them.
		if got := v.batches[p.Index-v.after-1].ChainingHash; got != p.ChainingHash {
			return Page{}, false, fmt.Errorf("%w: proof at index %d has chaining hash %s, the batches give %s",
				ErrProofMismatch, p.Index, hex32(p.ChainingHash), hex32(got))
		}
		if best == nil || p.Index > best.Index {
			best = p
		}
	}
	if best == nil {
		if v.pendingProof() {
			return Page{}, false, nil
		}
		if len(v.batches) > 0 {
			return Page{}, false, fmt.Errorf("%w: batches after %d are served but the proof does not reach them", ErrProofMismatch, v.after)
		}
		return Page{Node: node}, true, nil // nothing new is finalized yet
	}
	// One pairing check per page: the lower proofs are implied by the chain.
	if err := best.Verify(v.c); err != nil {
		return Page{}, false, err
	}
	return Page{Node: node, Batches: v.batches[:best.Index-v.after], Proof: best}, true, nil
}

// decodePage parses a node's page answer. It only checks JSON shape; the
// verifier checks the content.
func decodePage(raw []byte) (*seqapi.FinalizedPage, error) {
	var p seqapi.FinalizedPage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPage, err)
	}
	return &p, nil
}

// verifyOnePage is the whole check of a single page answer: decode, chain,
// prove. It is what the fuzz target drives.
func verifyOnePage(c *cluster.Cluster, app string, after uint64, prev [32]byte, raw []byte) (Page, error) {
	p, err := decodePage(raw)
	if err != nil {
		return Page{}, err
	}
	v := newChainVerifier(c, app, after, prev, 0, false)
	if err := v.add(p); err != nil {
		return Page{}, err
	}
	page, done, err := v.result("")
	if err != nil {
		return Page{}, err
	}
	if !done {
		return Page{}, fmt.Errorf("%w: the proof lies beyond this page", ErrProofMismatch)
	}
	return page, nil
}

// BatchHash is a batch's hash: keccak256(uint64be(timestampMs) || body).
func BatchHash(timestampMs uint64, body []byte) [32]byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], timestampMs)
	return eip712.Keccak256(ts[:], body)
}

// NextChainingHash is keccak256(prev || batchHash): the chaining hash of a
// batch given the one before it (32 zero bytes before the first batch).
func NextChainingHash(prev, batchHash [32]byte) [32]byte {
	return eip712.Keccak256(prev[:], batchHash[:])
}

// parseHash32 reads a 0x-prefixed 32-byte hex value.
func parseHash32(field, s string) ([32]byte, error) {
	var out [32]byte
	if len(s) != 66 || (s[:2] != "0x" && s[:2] != "0X") {
		return out, fmt.Errorf("%w: %s must be 0x and 64 hex digits", ErrMalformedPage, field)
	}
	if _, err := hex.Decode(out[:], []byte(s[2:])); err != nil {
		return out, fmt.Errorf("%w: %s is not hex", ErrMalformedPage, field)
	}
	return out, nil
}

func hex32(h [32]byte) string { return "0x" + hex.EncodeToString(h[:]) }

// ParseHash reads a 0x-prefixed 32-byte hex value such as an order id or a
// chaining hash.
func ParseHash(s string) ([32]byte, error) {
	h, err := parseHash32("value", strings.TrimSpace(s))
	if err != nil {
		return h, fmt.Errorf("%q is not a 32-byte hex value (0x and 64 hex digits)", s)
	}
	return h, nil
}
