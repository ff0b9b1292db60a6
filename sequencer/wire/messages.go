package wire

import (
	"errors"
	"fmt"
)

// Type identifies a message on the wire (the byte after the version).
type Type uint8

// Message types. Values are part of the wire format: never renumber.
const (
	TypePost        Type = 1
	TypePostReply   Type = 2
	TypeRound       Type = 3
	TypeVote        Type = 4
	TypeDispute     Type = 5
	TypeViewChange  Type = 6
	TypeViewState   Type = 7
	TypeNewView     Type = 8
	TypeSyncRequest Type = 9
	TypeSyncReply   Type = 10
)

func (t Type) String() string {
	switch t {
	case TypePost:
		return "Post"
	case TypePostReply:
		return "PostReply"
	case TypeRound:
		return "Round"
	case TypeVote:
		return "Vote"
	case TypeDispute:
		return "Dispute"
	case TypeViewChange:
		return "ViewChange"
	case TypeViewState:
		return "ViewState"
	case TypeNewView:
		return "NewView"
	case TypeSyncRequest:
		return "SyncRequest"
	case TypeSyncReply:
		return "SyncReply"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Message is one node-to-node message.
type Message interface {
	// Type is the message's wire type.
	Type() Type
	// ValidateBasic checks what can be checked without state: sizes,
	// lengths, bounds, well-formed names. Decode calls it.
	ValidateBasic() error
	// SenderView is the view the sender was in when it sent the message;
	// a receiver in a lower view learns it is behind, one in a higher view
	// answers with its view-change certificate.
	SenderView() uint64
}

// Post (node → leader): the node's initialized batches for one app and the
// end of its log. The leader appends the batches it has not sequenced yet
// and answers with a PostReply. Posts are also the heartbeat by which the
// leader learns how far every node's log goes (for choosing lock indexes).
type Post struct {
	App  string
	View uint64
	// Tip is the end of the node's log; the leader answers with every batch
	// after it (a page at a time).
	Tip Tip
	// Finalized is the node's finalized index; the leader sends the
	// finalize proofs after it.
	Finalized uint64
	// Batches are initialized batches, in increasing Seq.
	Batches []PostedBatch
}

// PostReply (leader → node): the batches of the leader's log after the
// node's tip, and the finalize proofs after the node's finalized index.
type PostReply struct {
	App  string
	View uint64
	// After is the index the batches follow: Batches[i].Index == After+1+i.
	After   uint64
	Batches []Batch
	// Proofs are finalize proofs (KindFinalize), increasing index.
	Proofs []Proof
	// Mismatch says the node's tip is not on the leader's chain: the node
	// must resynchronise (send a ViewState) before posting again.
	Mismatch bool
}

// Round (leader → node): a pipelined lock/finalize request for one app.
// Lock asks the node to sign Lock(app, View, Lock.Index, Lock.ChainingHash);
// Finalize carries a lock proof of this view and asks for Finalize
// signatures over exactly its (index, chaining hash); Finalized is the
// latest finalize proof, for nodes to learn finality. Any may be absent.
//
// ShareLock (with Lock) asks the node to send its Lock vote to every node,
// not only to the leader, and to sign Finalize, unasked, for the lock proof
// it can aggregate from the votes it gets: on a wide-area link that saves
// the leader's finalize request, one network delay (docs/protocol.md §6).
type Round struct {
	App       string
	View      uint64
	Lock      *LockTarget
	Finalize  *Proof // KindLock
	Finalized *Proof // KindFinalize
	ShareLock bool
}

// Vote (node → leader): the node's signatures for a Round. Under a Round's
// ShareLock a copy of the Lock vote alone also goes to every other node.
type Vote struct {
	App      string
	View     uint64
	Lock     *SignedTarget
	Finalize *SignedTarget
}

// Dispute (node → all): the node's signature saying the leader of View
// failed. More than N/3 of them form a Certificate.
type Dispute struct {
	View      uint64
	Reason    DisputeReason
	Signature Signature
}

// ViewChange (any → all): a dispute certificate; receivers in a view ≤
// Cert.View move to Cert.View+1.
type ViewChange struct {
	Cert Certificate
}

// AppState is one app's entry in a ViewState: where the node's log ends,
// its highest lock certificate (a lock proof, or a finalize proof, which
// implies one) and its finalize proof.
type AppState struct {
	App       string
	Tip       Tip
	Lock      *Proof
	Finalized *Proof // KindFinalize
}

// ViewState (node → leader of View): sent when a node enters a view (and
// repeated until the leader answers with NewView). The new leader adopts the
// highest lock it sees among a quorum of them.
type ViewState struct {
	View uint64
	// Cert is the certificate that started View (for View-1); nil in view 0.
	// It lets a leader that missed the view change catch up.
	Cert *Certificate
	Apps []AppState
}

// NewView (leader → node): for one app, the lock the leader adopted for
// this view and its finalize proof. The node syncs to them, then posts.
type NewView struct {
	App       string
	View      uint64
	Lock      *Proof
	Finalized *Proof // KindFinalize
}

// SyncRequest (node → peer): send me the batches of app after After on
// the chain that reaches Target (when Target.Index > 0), with the finalize
// proofs in that range. Have, when its index is above After, names a point
// of the requester's log it expects to be on that chain (its lock): a peer
// whose chain has Have.ChainingHash at Have.Index starts after Have
// instead, saving the requester a refetch of what it holds.
type SyncRequest struct {
	App    string
	View   uint64
	After  uint64
	Target LockTarget
	Have   Tip
}

// SyncReply (peer → node): batches after After (consecutive, a page) and
// the finalize proofs the peer holds in that range, increasing index.
type SyncReply struct {
	App     string
	View    uint64
	After   uint64
	Batches []Batch
	Proofs  []Proof
}

var (
	_ Message = (*Post)(nil)
	_ Message = (*PostReply)(nil)
	_ Message = (*Round)(nil)
	_ Message = (*Vote)(nil)
	_ Message = (*Dispute)(nil)
	_ Message = (*ViewChange)(nil)
	_ Message = (*ViewState)(nil)
	_ Message = (*NewView)(nil)
	_ Message = (*SyncRequest)(nil)
	_ Message = (*SyncReply)(nil)
)

// Type implements Message.
func (*Post) Type() Type { return TypePost }

// Type implements Message.
func (*PostReply) Type() Type { return TypePostReply }

// Type implements Message.
func (*Round) Type() Type { return TypeRound }

// Type implements Message.
func (*Vote) Type() Type { return TypeVote }

// Type implements Message.
func (*Dispute) Type() Type { return TypeDispute }

// Type implements Message.
func (*ViewChange) Type() Type { return TypeViewChange }

// Type implements Message.
func (*ViewState) Type() Type { return TypeViewState }

// Type implements Message.
func (*NewView) Type() Type { return TypeNewView }

// Type implements Message.
func (*SyncRequest) Type() Type { return TypeSyncRequest }

// Type implements Message.
func (*SyncReply) Type() Type { return TypeSyncReply }

// SenderView implements Message.
func (m *Post) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *PostReply) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *Round) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *Vote) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *Dispute) SenderView() uint64 { return m.View }

// SenderView implements Message: the certificate's view + 1.
func (m *ViewChange) SenderView() uint64 { return m.Cert.View + 1 }

// SenderView implements Message.
func (m *ViewState) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *NewView) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *SyncRequest) SenderView() uint64 { return m.View }

// SenderView implements Message.
func (m *SyncReply) SenderView() uint64 { return m.View }

// ValidateBasic implements Message.
func (m *Post) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("post: %w", err)
	}
	if m.Finalized > m.Tip.Index {
		return fmt.Errorf("post: finalized %d beyond tip %d", m.Finalized, m.Tip.Index)
	}
	if len(m.Batches) > MaxBatchesPerMessage {
		return fmt.Errorf("post: %d batches, limit %d", len(m.Batches), MaxBatchesPerMessage)
	}
	var prev uint64
	for i := range m.Batches {
		b := &m.Batches[i]
		if b.Seq <= prev {
			return fmt.Errorf("post: batch %d: seq %d not increasing", i, b.Seq)
		}
		prev = b.Seq
		if err := ValidateBody(b.Body); err != nil {
			return fmt.Errorf("post: batch %d: %w", i, err)
		}
	}
	return nil
}

// ValidateBasic implements Message.
func (m *PostReply) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("post reply: %w", err)
	}
	if err := validateBatches(m.After, m.Batches); err != nil {
		return fmt.Errorf("post reply: %w", err)
	}
	if err := validateProofs(m.Proofs, KindFinalize); err != nil {
		return fmt.Errorf("post reply: %w", err)
	}
	return nil
}

// ErrOtherViewLockProof: a Round asks to finalize a lock proof of another
// view. Rule 3 (docs/protocol.md §5) allows Finalize only for a lock proof
// of the current view; the edge refuses the request here and the core's
// voter checks it again.
var ErrOtherViewLockProof = errors.New("finalize request for a lock proof of another view")

// ValidateBasic implements Message.
func (m *Round) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("round: %w", err)
	}
	if m.Lock == nil && m.Finalize == nil && m.Finalized == nil {
		return errors.New("round: empty")
	}
	if m.Lock != nil && m.Lock.Index == 0 {
		return errors.New("round: lock of index 0")
	}
	if m.ShareLock && m.Lock == nil {
		return errors.New("round: share_lock without a lock")
	}
	if m.Finalize != nil {
		if err := m.Finalize.ValidateBasic(); err != nil {
			return fmt.Errorf("round: finalize: %w", err)
		}
		if m.Finalize.Kind != KindLock {
			return errors.New("round: finalize request must carry a lock proof")
		}
		if m.Finalize.View != m.View {
			return fmt.Errorf("round: lock proof of view %d in a view %d round: %w", m.Finalize.View, m.View, ErrOtherViewLockProof)
		}
	}
	if m.Finalized != nil {
		if err := m.Finalized.ValidateBasic(); err != nil {
			return fmt.Errorf("round: finalized: %w", err)
		}
		if m.Finalized.Kind != KindFinalize {
			return errors.New("round: finalized must be a finalize proof")
		}
	}
	return nil
}

// ValidateBasic implements Message.
func (m *Vote) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("vote: %w", err)
	}
	if m.Lock == nil && m.Finalize == nil {
		return errors.New("vote: empty")
	}
	if m.Lock != nil && m.Lock.Index == 0 {
		return errors.New("vote: lock of index 0")
	}
	if m.Finalize != nil && m.Finalize.Index == 0 {
		return errors.New("vote: finalize of index 0")
	}
	return nil
}

// ValidateBasic implements Message.
func (m *Dispute) ValidateBasic() error {
	if m.Reason < ReasonSilent || m.Reason > ReasonMisbehaved {
		return fmt.Errorf("dispute: unknown reason %d", m.Reason)
	}
	return nil
}

// ValidateBasic implements Message.
func (m *ViewChange) ValidateBasic() error {
	if m.Cert.View == ^uint64(0) {
		return errors.New("view change: view overflow")
	}
	return m.Cert.ValidateBasic()
}

// ValidateBasic implements Message.
func (m *ViewState) ValidateBasic() error {
	if m.View > 0 && m.Cert == nil {
		return fmt.Errorf("view state: view %d without its certificate", m.View)
	}
	if m.Cert != nil {
		if err := m.Cert.ValidateBasic(); err != nil {
			return fmt.Errorf("view state: %w", err)
		}
		if m.Cert.View+1 != m.View {
			return fmt.Errorf("view state: certificate of view %d for view %d", m.Cert.View, m.View)
		}
	}
	if len(m.Apps) > MaxAppsPerMessage {
		return fmt.Errorf("view state: %d apps, limit %d", len(m.Apps), MaxAppsPerMessage)
	}
	for i := range m.Apps {
		a := &m.Apps[i]
		if err := ValidateApp(a.App); err != nil {
			return fmt.Errorf("view state: app %d: %w", i, err)
		}
		if i > 0 && m.Apps[i-1].App >= a.App {
			return errors.New("view state: apps not in strictly increasing order")
		}
		if err := validateLockAndFinal(a.Lock, a.Finalized); err != nil {
			return fmt.Errorf("view state: app %s: %w", a.App, err)
		}
	}
	return nil
}

// ValidateBasic implements Message.
func (m *NewView) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("new view: %w", err)
	}
	if err := validateLockAndFinal(m.Lock, m.Finalized); err != nil {
		return fmt.Errorf("new view: %w", err)
	}
	return nil
}

// ValidateBasic implements Message.
func (m *SyncRequest) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("sync request: %w", err)
	}
	if m.Target.Index != 0 && m.Target.Index <= m.After {
		return fmt.Errorf("sync request: target %d not after %d", m.Target.Index, m.After)
	}
	if m.Have.Index != 0 && (m.Have.Index <= m.After || m.Have.Index >= m.Target.Index) {
		return fmt.Errorf("sync request: have %d outside (%d, %d)", m.Have.Index, m.After, m.Target.Index)
	}
	return nil
}

// ValidateBasic implements Message.
func (m *SyncReply) ValidateBasic() error {
	if err := ValidateApp(m.App); err != nil {
		return fmt.Errorf("sync reply: %w", err)
	}
	if err := validateBatches(m.After, m.Batches); err != nil {
		return fmt.Errorf("sync reply: %w", err)
	}
	if err := validateProofs(m.Proofs, KindFinalize); err != nil {
		return fmt.Errorf("sync reply: %w", err)
	}
	if len(m.Proofs) > 0 {
		last := m.Proofs[len(m.Proofs)-1].Index
		if m.Proofs[0].Index <= m.After || last > m.After+uint64(len(m.Batches)) {
			return errors.New("sync reply: proof outside the batches' range")
		}
	}
	return nil
}

// validateLockAndFinal checks the (lock, finalized) pair of a ViewState app
// or a NewView: a lock certificate may be a lock or a finalize proof. Their
// views are not bounded by the message's: a node still in view v may have
// synced a finalize proof made in a later view from a peer.
func validateLockAndFinal(lock, fin *Proof) error {
	if lock != nil {
		if err := lock.ValidateBasic(); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if fin != nil {
		if err := fin.ValidateBasic(); err != nil {
			return fmt.Errorf("finalized: %w", err)
		}
		if fin.Kind != KindFinalize {
			return errors.New("finalized must be a finalize proof")
		}
	}
	return nil
}

// validateBatches checks a run of consecutive batches after index after.
func validateBatches(after uint64, bs []Batch) error {
	if len(bs) > MaxBatchesPerMessage {
		return fmt.Errorf("%d batches, limit %d", len(bs), MaxBatchesPerMessage)
	}
	if after > ^uint64(0)-uint64(len(bs)) {
		return errors.New("batch index overflow")
	}
	for i := range bs {
		b := &bs[i]
		if b.Index != after+1+uint64(i) {
			return fmt.Errorf("batch %d has index %d, want %d", i, b.Index, after+1+uint64(i))
		}
		if int(b.Origin) >= MaxNodes {
			return fmt.Errorf("batch %d: origin %d out of range", b.Index, b.Origin)
		}
		if b.Seq == 0 {
			return fmt.Errorf("batch %d: seq 0", b.Index)
		}
		if err := ValidateBody(b.Body); err != nil {
			return fmt.Errorf("batch %d: %w", b.Index, err)
		}
	}
	return nil
}

// validateProofs checks a list of proofs of one kind in increasing index.
func validateProofs(ps []Proof, kind ProofKind) error {
	if len(ps) > MaxProofsPerMessage {
		return fmt.Errorf("%d proofs, limit %d", len(ps), MaxProofsPerMessage)
	}
	for i := range ps {
		if err := ps[i].ValidateBasic(); err != nil {
			return err
		}
		if ps[i].Kind != kind {
			return fmt.Errorf("proof %d is a %s proof, want %s", i, ps[i].Kind, kind)
		}
		if i > 0 && ps[i].Index <= ps[i-1].Index {
			return errors.New("proofs not in increasing index order")
		}
	}
	return nil
}
