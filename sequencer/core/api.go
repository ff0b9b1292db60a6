// Package core is the sequencer protocol (DESIGN §4) as a deterministic
// state machine, in the style of etcd-io/raft: no goroutines, sockets,
// disk, clock or randomness inside. The runtime (sequencer/node) drives it:
//
//	n, err := core.NewNode(cfg, crypto, store) // store holds what a previous run persisted
//	loop:
//	    n.Tick(nowMs)                 // every cfg.TickMs (10 ms), or
//	    n.Skip(k); n.Tick(nowMs)      // after sleeping k ≤ n.IdleTicks() idle ticks
//	    n.Step(from, msg)             // msg from wire.Decode of an authenticated peer's bytes
//	    err := n.Submit(app, body)    // PUT /node/{app}/batches
//	    if n.HasReady() {
//	        rd := n.Ready()
//	        store.Save(&rd.Persist)   // 1. durably, BEFORE anything else
//	        send rd.Messages          // 2. only after Save returned nil
//	        publish rd.Finalized      // 3. wake readers waiting for finality
//	        n.Advance()               // 4. tell the core rd is done
//	    }
//
// NewNode may already have output (a restarted node asks the leader for
// the view's state): check HasReady before the first Tick.
//
// Ordering rules (they are what makes the safety rules survive crashes):
//   - Persist BEFORE sending: a Ready's Messages may contain signatures
//     whose safety records are in the same Ready's Persist. If Save fails,
//     the runtime must stop (crash) without sending anything.
//   - Call Ready/Advance in pairs. Between them the runtime may go on
//     calling Tick, Step and Submit while it saves (group commit): Ready
//     handed its output over, and what those calls produce goes to the next
//     Ready, which must be saved after this one.
//   - A Submit's batch is durable once the Persist of the first Ready taken
//     after the Submit is saved; answer "accepted" after that Save.
//   - A Node is not safe for concurrent use: one goroutine owns it. Status is
//     a cheap copy the owner can publish for HTTP handlers.
//
// Reads for the node HTTP API are served from the store, not from the core:
// ReadFinalized and LastFinalized are pure functions over a LogReader (the
// store), safe to call from any goroutine if the store is. What they return
// is always a run of finalized batches ending at an index for which the
// store holds a finalize proof.
//
// The protocol, its safety argument, every timeout and bound are described
// in docs/protocol.md.
package core

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Errors Submit returns. The runtime maps them to HTTP statuses:
// ErrBodyTooLarge → 413, ErrBacklogFull → 429, the others → 400.
var (
	// ErrBodyTooLarge: the batch is over wire.MaxBatchBytes (1 MiB).
	ErrBodyTooLarge = errors.New("batch body too large")
	// ErrInvalidBody: the batch is not valid UTF-8.
	ErrInvalidBody = errors.New("batch body is not valid UTF-8")
	// ErrInvalidApp: the app name is empty, too long or uses characters
	// outside [A-Za-z0-9._-].
	ErrInvalidApp = errors.New("invalid app name")
	// ErrBacklogFull: the app already has PendingBatchesMax (or
	// PendingBytesMax) batches waiting to be sequenced on this node.
	ErrBacklogFull = errors.New("too many batches waiting to be sequenced")
	// ErrTooManyApps: accepting the batch would make the node track more
	// than AppsMax apps.
	ErrTooManyApps = errors.New("too many apps")
)

// Config is a node's protocol configuration. Timeouts count ticks; with
// the default TickMs of 10 ms, 200 ticks are 2 s.
type Config struct {
	// ChainID selects the EIP-712 domain of every Lock and Finalize digest.
	ChainID uint64
	// Nodes is N, the number of nodes in the cluster file; Self is this
	// node's index in it. Node i leads views v with v mod N == i.
	Nodes int
	Self  int

	// TickMs is the length of a tick: how often the runtime calls Tick
	// while ticks are not idle (IdleTicks). The core never reads
	// time; it uses this only to turn Tick's nowMs into skew checks that are
	// independent of the tick rate.
	TickMs uint64
	// PostIntervalTicks: how often a node posts its initialized batches to
	// the leader (DESIGN: 20 ms).
	PostIntervalTicks int
	// IdlePostIntervalTicks: how often a follower with nothing to post
	// (no batch of its own waiting, its log all finalized) posts anyway,
	// as the heartbeat that tells it the leader still answers. New
	// batches are posted at once (postSoon), so this costs no latency; it
	// only keeps an idle cluster from exchanging 50 posts a second per
	// follower. Must stay well under LeaderTimeoutTicks.
	IdlePostIntervalTicks int
	// RetryTicks: how long at least an unanswered request (round, post,
	// view state, sync, dispute) waits before it is sent again. Messages
	// may be lost; the protocol only relies on retries. Each peer's wait
	// follows its observed round trip (see retry.go) between RetryTicks
	// and RetryTicksMax.
	RetryTicks int
	// RetryTicksMax bounds the wait before an unanswered request is sent
	// again, however slow the peer's answers have been: a lost message
	// is sent again within it. At most half of LeaderTimeoutTicks.
	RetryTicksMax int
	// LeaderTimeoutTicks: dispute the leader after it has not answered for
	// this long (DESIGN: 2 s).
	LeaderTimeoutTicks int
	// CensorshipTimeoutTicks: dispute the leader when one of this node's
	// own batches has been posted for this long without being sequenced
	// (DESIGN: 5 s).
	CensorshipTimeoutTicks int
	// FinalizeTimeoutTicks: dispute the leader when batches wait and the
	// finalized index has not moved for this long (DESIGN: 5 s).
	FinalizeTimeoutTicks int
	// ViewStateGraceTicks: once a new leader holds view states from a
	// quorum, how long it still waits for the others (so it sees the highest
	// lock if a node outside that quorum holds it) before choosing.
	ViewStateGraceTicks int
	// TimeoutBackoffMax caps how many times the timeouts above double
	// after consecutive views without finalization progress: they grow
	// 1×, 2×, 4×, … 2^TimeoutBackoffMax×, so that after a partition heals
	// some view lasts long enough to finish. The cap is the delay bound the
	// protocol assumes (see the pacemaker, docs/protocol.md §6); at most 30.
	TimeoutBackoffMax int
	// ClockSkewMsMax: a node refuses (and disputes) a leader timestamp
	// more than this far ahead of its own clock, or a timestamp on one of
	// its own batches more than this far before the time it first posted it.
	ClockSkewMsMax uint64

	// AppsMax bounds how many apps a node tracks.
	AppsMax int
	// PendingBatchesMax and PendingBytesMax bound, per app, the batches
	// received on this node and not yet finalized (Submit answers
	// ErrBacklogFull beyond them).
	PendingBatchesMax int
	PendingBytesMax   int
	// UnfinalizedBatchesMax and UnfinalizedBytesMax bound, per app, how far
	// the sequence may run ahead of the finalized index: a leader stops
	// sequencing beyond them and a node refuses to hold more, so memory and
	// the sync of an unfinalized suffix stay bounded.
	UnfinalizedBatchesMax int
	UnfinalizedBytesMax   int
	// RoundBatchesMax and RoundBytesMax bound how much one lock/finalize
	// round covers, so consecutive finalize proofs are close and every page
	// of finalized batches ends at a proof without exceeding page bounds.
	RoundBatchesMax int
	RoundBytesMax   int
	// RoundOverlapBatchesMax: another lock round may start while rounds
	// are under way only if the network holds a round for two ticks or
	// more (the peers' smallest recent round trips) and those lock at most
	// this many batches each on average and four times this many in all
	// (and the newest started at least a quarter of a round's time or two
	// ticks ago); the finalize of a new lock proof starts at once. At light load a batch then goes out to be locked within that
	// instead of waiting for the round under way (on a wide-area link,
	// most of a round trip); under load rounds stay one at a time and grow
	// with what arrives, so their fixed cost is shared by more batches.
	// 0: one round at a time.
	RoundOverlapBatchesMax int
	// ShareLockVotes: when a leader's lock rounds ask every node to send
	// its Lock vote to all nodes (Round.ShareLock), so that each node
	// aggregates the lock proof itself and signs Finalize unasked, one
	// network delay before the leader's finalize request would reach it.
	// ShareAuto (the default) shares when the network holds a round for two
	// ticks or more (quorumFloor, a wide-area link), where that delay is
	// worth more than the messages and the proof check each node adds;
	// ShareAlways and ShareNever decide for every round.
	ShareLockVotes ShareMode
	// SpareVoters: whether a round asks only as many followers as a
	// quorum needs besides the leader's own vote (Q-1; the others are
	// spares, sent the newest finalize proof alone and asked only when an
	// asked follower has not answered within its retry timeout). Every
	// vote beyond a quorum costs its node two signatures and a proof check
	// that no proof uses. SpareAuto (the default) spares when the network
	// does not hold a round for two ticks (one host, where that CPU is
	// what holds the rounds) and every follower asked answered its last
	// request in time; SpareAlways spares whenever the leader signs the
	// round itself (the simulator), SpareNever never.
	SpareVoters SpareMode
	// HoldTicksMax: output that only carries batches (entries and pending
	// batches to persist, pushes, post replies, a follower's posts) waits
	// for the next output of the round under way, so one save (one fsync)
	// covers both, for at most this many ticks (HasReady, holdable). A
	// round's own output (votes, proofs, requests) never waits. 0: nothing
	// waits (a save as soon as the previous one is done).
	HoldTicksMax int
	// PageBatchesMax and PageBytesMax bound one PostReply or SyncReply.
	PageBatchesMax int
	PageBytesMax   int
	// PostBytesMax bounds the batch bytes of one Post.
	PostBytesMax int
	// ProofsPerReplyMax bounds the finalize proofs one reply carries.
	ProofsPerReplyMax int

	// Mutation deliberately breaks a safety rule. It exists only so the
	// simulator can prove its checker notices an unsafe protocol (the
	// mutation canary); a running node never sets it.
	Mutation Mutation

	// Logger receives protocol events (view changes, disputes, refused
	// messages). Nil means slog.Default().
	Logger *slog.Logger
}

// ShareMode says when lock votes go to every node (Config.ShareLockVotes).
type ShareMode uint8

// Share modes.
const (
	ShareAuto ShareMode = iota
	ShareAlways
	ShareNever
)

// String names the mode as the simulator's --share flag does.
func (m ShareMode) String() string { return modeName(uint8(m), "ShareMode") }

// modeNames are the names of the three-way modes (ShareMode, SpareMode),
// whose values are in this order.
var modeNames = [...]string{"auto", "always", "never"}

func modeName(m uint8, typ string) string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("%s(%d)", typ, m)
}

// SpareMode says when a round leaves the votes a quorum does not need
// unasked (Config.SpareVoters).
type SpareMode uint8

// Spare modes.
const (
	SpareAuto SpareMode = iota
	SpareAlways
	SpareNever
)

// String names the mode as the simulator's --spare flag does.
func (m SpareMode) String() string { return modeName(uint8(m), "SpareMode") }

// Mutation names a deliberately broken protocol variant (see
// Config.Mutation).
type Mutation uint8

// Mutations. Each breaks one thing docs/protocol.md §5 or §7 relies on;
// `seqbook sim --mutation NAME` must catch every one (make canaries).
const (
	// MutationNone is the protocol as specified.
	MutationNone Mutation = iota
	// MutationForgetLocks breaks safety rule 2: at a view change a node
	// forgets its highest lock (keeping only what is finalized), so it
	// reports no lock to the new leader and accepts chains that conflict
	// with a lock that may have produced a finalize proof.
	MutationForgetLocks
	// MutationRule1 drops rule 1's records from the voter: a node signs
	// two different Locks (or Finalizes) for one (view, index) if asked.
	MutationRule1
	// MutationRule2 drops rule 2's check: a node signs Locks for chains
	// that do not extend its lock certificate (below its index).
	MutationRule2
	// MutationRule3 breaks the half of rule 3 that Lemma 2 rests on: a
	// node signs Finalize for a lock proof of its view without first
	// adopting that proof as its lock certificate, so a finalize proof
	// can exist while its signers still report a lower lock.
	MutationRule3
	// MutationSignAnyHash makes honest nodes sign every Lock asked,
	// whatever chaining hash it names and whatever their log holds.
	MutationSignAnyHash
	// MutationSyncDropsLock lets a sync replace the chain of the lock for
	// a chain certified by a proof of the same or a lower view (the node
	// then takes that proof as its lock).
	MutationSyncDropsLock
	// MutationFinalizeOldViewLock drops rule 3's view check: a node
	// signs Finalize in its view for a lock proof of an older view.
	MutationFinalizeOldViewLock
	// MutationQuorumMinusOne makes a node form and accept quorum proofs
	// (lock and finalize) of Q-1 signers.
	MutationQuorumMinusOne
	// MutationSendBeforeSave is the runtime's, not the core's: the node
	// runtime's Ready handling (sequencer/node/runner) sends a Ready's
	// messages before its Persist is saved, breaking persist-before-send.
	MutationSendBeforeSave
)

// Mutations lists every mutation with its name (seqbook sim --mutation,
// printed by --list-mutations, run by make canaries).
var Mutations = []struct {
	Name     string
	Mutation Mutation
}{
	{"rule1", MutationRule1},
	{"rule2", MutationRule2},
	{"rule3", MutationRule3},
	{"sign-any-hash", MutationSignAnyHash},
	{"sync-drops-lock-for-lower-view", MutationSyncDropsLock},
	{"finalize-old-view-lock", MutationFinalizeOldViewLock},
	{"quorum-minus-one", MutationQuorumMinusOne},
	{"forget-locks", MutationForgetLocks},
	{"send-before-save", MutationSendBeforeSave},
}

// MutationNamed returns the mutation called name (see Mutations).
func MutationNamed(name string) (Mutation, bool) {
	for _, m := range Mutations {
		if m.Name == name {
			return m.Mutation, true
		}
	}
	return MutationNone, false
}

// String is the mutation's name in Mutations ("none" for MutationNone).
func (m Mutation) String() string {
	for _, x := range Mutations {
		if x.Mutation == m {
			return x.Name
		}
	}
	if m == MutationNone {
		return "none"
	}
	return fmt.Sprintf("mutation(%d)", uint8(m))
}

// DefaultConfig is the production configuration of node self in a cluster
// of n nodes on chain chainID.
func DefaultConfig(chainID uint64, n, self int) Config {
	return Config{
		ChainID:                chainID,
		Nodes:                  n,
		Self:                   self,
		TickMs:                 10,
		PostIntervalTicks:      2,   // 20 ms
		IdlePostIntervalTicks:  25,  // 250 ms
		RetryTicks:             20,  // 200 ms
		RetryTicksMax:          100, // 1 s
		LeaderTimeoutTicks:     200, // 2 s
		CensorshipTimeoutTicks: 500, // 5 s
		FinalizeTimeoutTicks:   500, // 5 s
		ViewStateGraceTicks:    10,  // 100 ms
		TimeoutBackoffMax:      10,  // timers grow to at most 2^10 × (2 s leader timeout ≈ 34 min)
		ClockSkewMsMax:         2000,
		AppsMax:                64,
		PendingBatchesMax:      10_000,
		PendingBytesMax:        64 << 20,
		UnfinalizedBatchesMax:  4096,
		UnfinalizedBytesMax:    12 << 20,
		RoundBatchesMax:        1000,
		RoundBytesMax:          4 << 20,
		RoundOverlapBatchesMax: 4,
		HoldTicksMax:           5, // 50 ms
		PageBatchesMax:         1000,
		PageBytesMax:           4 << 20,
		PostBytesMax:           4 << 20,
		ProofsPerReplyMax:      64,
	}
}

// TestConfig is a configuration for tests and the simulator: the same
// protocol with short timeouts and small bounds, so bounds are reached.
func TestConfig(chainID uint64, n, self int) Config {
	c := DefaultConfig(chainID, n, self)
	c.PostIntervalTicks = 1
	c.IdlePostIntervalTicks = 5
	c.RetryTicks = 10
	c.RetryTicksMax = 15
	c.LeaderTimeoutTicks = 30
	c.CensorshipTimeoutTicks = 60
	c.FinalizeTimeoutTicks = 60
	c.ViewStateGraceTicks = 2
	c.TimeoutBackoffMax = 4
	c.ClockSkewMsMax = 500
	c.AppsMax = 4
	c.PendingBatchesMax = 64
	c.PendingBytesMax = 64 << 10
	c.UnfinalizedBatchesMax = 128
	c.UnfinalizedBytesMax = 256 << 10
	c.RoundBatchesMax = 8
	c.RoundBytesMax = 16 << 10
	c.PageBatchesMax = 16
	c.PageBytesMax = 32 << 10
	c.PostBytesMax = 16 << 10
	c.ProofsPerReplyMax = 8
	// Core tests take each output at once; the simulator holds by seed.
	c.HoldTicksMax = 0
	return c
}

// ValidateBasic checks the configuration for values the protocol cannot
// run with.
func (c *Config) ValidateBasic() error {
	if c.ChainID == 0 {
		return errors.New("config: chain id must be set")
	}
	if c.Nodes < 1 || c.Nodes > wire.MaxNodes {
		return fmt.Errorf("config: %d nodes, want 1..%d", c.Nodes, wire.MaxNodes)
	}
	if c.Self < 0 || c.Self >= c.Nodes {
		return fmt.Errorf("config: self %d is not a node index (0..%d)", c.Self, c.Nodes-1)
	}
	positive := []struct {
		name string
		v    int
	}{
		{"PostIntervalTicks", c.PostIntervalTicks}, {"IdlePostIntervalTicks", c.IdlePostIntervalTicks},
		{"RetryTicks", c.RetryTicks},
		{"LeaderTimeoutTicks", c.LeaderTimeoutTicks}, {"CensorshipTimeoutTicks", c.CensorshipTimeoutTicks},
		{"FinalizeTimeoutTicks", c.FinalizeTimeoutTicks}, {"TimeoutBackoffMax", c.TimeoutBackoffMax},
		{"AppsMax", c.AppsMax}, {"PendingBatchesMax", c.PendingBatchesMax}, {"PendingBytesMax", c.PendingBytesMax},
		{"UnfinalizedBatchesMax", c.UnfinalizedBatchesMax}, {"UnfinalizedBytesMax", c.UnfinalizedBytesMax},
		{"RoundBatchesMax", c.RoundBatchesMax}, {"RoundBytesMax", c.RoundBytesMax},
		{"PageBatchesMax", c.PageBatchesMax}, {"PageBytesMax", c.PageBytesMax},
		{"PostBytesMax", c.PostBytesMax}, {"ProofsPerReplyMax", c.ProofsPerReplyMax},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("config: %s must be positive, got %d", p.name, p.v)
		}
	}
	if c.IdlePostIntervalTicks < c.PostIntervalTicks || 2*c.IdlePostIntervalTicks > c.LeaderTimeoutTicks {
		return fmt.Errorf("config: IdlePostIntervalTicks %d must be at least PostIntervalTicks (%d) and at most half of LeaderTimeoutTicks (%d)",
			c.IdlePostIntervalTicks, c.PostIntervalTicks, c.LeaderTimeoutTicks)
	}
	if c.TickMs == 0 {
		return errors.New("config: TickMs must be positive")
	}
	if c.ViewStateGraceTicks < 0 {
		return errors.New("config: ViewStateGraceTicks must not be negative")
	}
	if c.HoldTicksMax < 0 {
		return errors.New("config: HoldTicksMax must not be negative")
	}
	if c.RoundOverlapBatchesMax < 0 {
		return errors.New("config: RoundOverlapBatchesMax must not be negative")
	}
	if c.ShareLockVotes > ShareNever {
		return fmt.Errorf("config: unknown ShareLockVotes %d", c.ShareLockVotes)
	}
	if c.SpareVoters > SpareNever {
		return fmt.Errorf("config: unknown SpareVoters %d", c.SpareVoters)
	}
	if c.TimeoutBackoffMax > 30 {
		return fmt.Errorf("config: TimeoutBackoffMax %d: at most 30 doublings", c.TimeoutBackoffMax)
	}
	if c.RetryTicksMax < c.RetryTicks || 2*c.RetryTicksMax > c.LeaderTimeoutTicks {
		return fmt.Errorf("config: RetryTicksMax %d must be at least RetryTicks (%d) and at most half of LeaderTimeoutTicks (%d)",
			c.RetryTicksMax, c.RetryTicks, c.LeaderTimeoutTicks)
	}
	if c.AppsMax > wire.MaxAppsPerMessage {
		return fmt.Errorf("config: AppsMax %d over the wire limit %d", c.AppsMax, wire.MaxAppsPerMessage)
	}
	if c.PageBatchesMax > wire.MaxBatchesPerMessage || c.ProofsPerReplyMax > wire.MaxProofsPerMessage {
		return errors.New("config: page bounds over the wire limits")
	}
	// A page, a post and a round always fit one maximal batch, and a
	// message of one page plus that batch stays under the wire bound.
	if c.PageBytesMax+wire.MaxBatchBytes+(1<<20) > wire.MaxMessageBytes || c.PostBytesMax+wire.MaxBatchBytes+(1<<20) > wire.MaxMessageBytes {
		return errors.New("config: PageBytesMax/PostBytesMax too large for wire.MaxMessageBytes")
	}
	if c.RoundBatchesMax > c.UnfinalizedBatchesMax || c.RoundBytesMax > c.UnfinalizedBytesMax {
		return errors.New("config: a round must fit in the unfinalized bounds")
	}
	// The first round of a view finalizes everything locked in the previous
	// one at once: that run must stay servable as one page (ReadFinalized)
	// and fetchable as one uncertified sync run.
	if c.UnfinalizedBatchesMax > pageGapBatchesMax || c.UnfinalizedBytesMax+wire.MaxBatchBytes+(1<<20) > wire.MaxMessageBytes {
		return fmt.Errorf("config: unfinalized bounds over %d batches or the message size", pageGapBatchesMax)
	}
	return nil
}

// Quorum is Q, the smallest number of nodes greater than 2N/3.
func (c *Config) Quorum() int { return cluster.Quorum(c.Nodes) }

// DisputeQuorum is the smallest number of nodes greater than N/3: enough
// disputes to be sure one honest node saw the leader fail.
func (c *Config) DisputeQuorum() int { return c.Nodes/3 + 1 }

// Leader is the node leading view v: v mod N.
func (c *Config) Leader(view uint64) int { return int(view % uint64(c.Nodes)) }

// Crypto signs with this node's key and checks the signatures of cluster
// members. NewBLSCrypto is the real one; the simulator has a cheap keyed
// hash with the same interface. Verification must be a real check in every
// implementation: the core's safety rules rely on it.
type Crypto interface {
	// Sign signs a 32-byte digest with this node's key.
	Sign(digest [32]byte) wire.Signature
	// Verify checks node's signature on digest.
	Verify(node int, digest [32]byte, sig wire.Signature) bool
	// Aggregate combines signatures (by distinct nodes, on one digest).
	Aggregate(sigs []wire.Signature) (wire.Signature, error)
	// VerifyAggregate checks an aggregate by the nodes of signers on
	// digest. It does not count signers; the core checks quorums.
	VerifyAggregate(signers wire.Bitmap, digest [32]byte, sig wire.Signature) bool
	// VerifyAggregates checks several aggregates at once, each as
	// VerifyAggregate would; true only if all verify. False does not say
	// which failed: the caller then checks them one by one.
	VerifyAggregates(checks []AggregateCheck) bool
}

// AggregateCheck is one aggregate signature for VerifyAggregates.
type AggregateCheck struct {
	Signers   wire.Bitmap
	Digest    [32]byte
	Signature wire.Signature
}

// Entry is one batch of an app's log as a node stores it: the wire batch
// and the hashes the node computed from it.
type Entry struct {
	wire.Batch
	// Hash is keccak256(uint64be(Timestamp) || Body).
	Hash wire.Hash
	// ChainingHash is keccak256(chaining hash of Index-1 || Hash), with the
	// zero hash before index 1.
	ChainingHash wire.Hash
}

// Signed records the last Lock (or Finalize) a node signed for an app:
// the compact form of safety rule 1. Within a view a node only signs
// increasing indexes on one chain, so remembering the last one is enough to
// never sign two different messages for the same (view, app, index). The
// zero value means "never signed".
type Signed struct {
	View         uint64
	Index        uint64
	ChainingHash wire.Hash
}

// HardState is the node-wide state that must survive a restart.
type HardState struct {
	// View is the node's current view. It only increases.
	View uint64
	// Cert is the certificate that started View (nil in view 0); the node
	// shows it to peers still in older views.
	Cert *wire.Certificate
}

// AppHardState is one app's state that must survive a restart.
type AppHardState struct {
	App string
	// SignedLock and SignedFinalize are the safety records of rule 1.
	SignedLock     Signed
	SignedFinalize Signed
	// Lock is the highest lock certificate the node holds (a lock proof, or
	// a finalize proof, which implies a lock proof of the same view, index
	// and hash), ordered by (view, index); nil before the first. Rule 2 is
	// checked against it. The node's log always contains its chain.
	Lock *wire.Proof
	// Finalized is the finalize proof of the node's finalized index; nil
	// while nothing is final. Every entry up to Finalized.Index is final.
	Finalized *wire.Proof
	// OriginSeqs[i] is the highest Seq of a batch from origin node i in the
	// finalized prefix; a leader uses it to drop duplicate posts.
	OriginSeqs []uint64
	// NextSeq is the Seq the next batch submitted to this node gets.
	NextSeq uint64
}

// Pending is a batch submitted to this node that is not final yet.
type Pending struct {
	Seq  uint64
	Body []byte
	// SubmittedMs is the node's clock when the batch was submitted (the
	// nowMs of the last Tick): a leader stamp more than ClockSkewMsMax
	// before it is a lie, since nobody can sequence a batch before it
	// exists.
	SubmittedMs uint64
}

// AppPersist is what changed for one app. A Store applies all of it in one
// transaction: Truncate, Entries, Proofs, Hard, PendingPut, PendingDelete.
// A truncation never reaches below the finalized index the store held
// before this Persist (a sync may truncate and then finalize further in the
// same Persist).
type AppPersist struct {
	App string
	// Hard, when non-nil, replaces the app's hard state.
	Hard *AppHardState
	// Truncate, when true, deletes every entry with index > TruncateAfter
	// (a view change drops sequenced batches that were never locked).
	// Entries final before this Persist are never truncated.
	Truncate      bool
	TruncateAfter uint64
	// Entries are written at their indexes, replacing what is there.
	Entries []Entry
	// Proofs are finalize proofs to keep, keyed by their index; pages of
	// finalized batches end at them.
	Proofs []wire.Proof
	// PendingPut adds (or replaces) pending batches; PendingDelete removes
	// them by Seq.
	PendingPut    []Pending
	PendingDelete []uint64
}

// Persist is what must be durable before a Ready's messages are sent.
type Persist struct {
	// Hard, when non-nil, replaces the node's hard state.
	Hard *HardState
	// Apps lists per-app changes, ordered by app name.
	Apps []AppPersist
}

// IsEmpty reports whether there is nothing to save.
func (p *Persist) IsEmpty() bool { return p.Hard == nil && len(p.Apps) == 0 }

// Envelope is one message to send to node To.
type Envelope struct {
	To  int
	Msg wire.Message
}

// Finalized reports batches that became final: Entries are consecutive,
// and Proof is a finalize proof for the last of them.
type Finalized struct {
	App     string
	Entries []Entry
	Proof   wire.Proof
}

// Ready is the core's output since the last Advance. See the package doc
// for the order in which the runtime must handle it.
type Ready struct {
	// Persist must be saved first.
	Persist Persist
	// Messages are sent after Persist is saved.
	Messages []Envelope
	// Finalized lists newly final batches per app, for waking readers.
	// They are also in Persist (the store is where reads come from).
	Finalized []Finalized
}

// AppStatus is one app's progress on this node.
type AppStatus struct {
	App string
	// Initialized counts batches submitted to this node that are waiting
	// to be sequenced.
	Initialized int
	// Sequenced, Locked and Finalized are indexes of the node's log:
	// the last batch it holds, the index of its highest lock certificate,
	// the last final batch. Invariant: Finalized ≤ Locked ≤ Sequenced.
	Sequenced uint64
	Locked    uint64
	Finalized uint64
}

// Status is a snapshot of a node's state for GET /node/state and
// GET /node/ready.
type Status struct {
	Node   int
	View   uint64
	Leader int
	// Ready is true when the node leads its view and has chosen the view's
	// starting point from a quorum of view states, or follows a leader it
	// heard from recently; and every app it knows is synchronised. A node
	// alone, or still syncing after a restart, is not ready.
	Ready bool
	// Apps are ordered by name.
	Apps []AppStatus
}

// Metrics counts protocol events on one node since it started. The core
// only increments them; Node.Metrics returns a copy the runtime can export
// (Prometheus is wired in the node package, not here).
type Metrics struct {
	ViewChanges      uint64 // views entered
	DisputesSent     uint64 // disputes this node signed
	LockProofs       uint64 // lock proofs formed as leader
	FinalizeProofs   uint64 // finalize proofs formed as leader
	SharedLockProofs uint64 // lock proofs formed as follower from shared lock votes (Round.ShareLock)
	BatchesSequenced uint64 // batches appended as leader
	BatchesFinalized uint64 // batches that became final here
	SyncsStarted     uint64 // chain fetches started
	StepErrors       uint64 // peer messages refused with an error
	// Resends: requests sent again because no answer came in time (see
	// retryTicks). Each one costs the receiver a decode and checks, and
	// bandwidth: at a healthy steady state they stay near zero.
	RoundResends     uint64 // Round requests sent again to a node that had not voted (one per node)
	BatchResends     uint64 // own batches a post carried again before they were sequenced
	PushResends      uint64 // leader: pushes to a node taken as lost, to be sent again
	SyncResends      uint64 // sync requests sent again (to the next peer) after no reply
	ViewStateResends uint64 // view states sent again to a leader while syncing
	DisputeResends   uint64 // disputes broadcast again while the view did not change
}

// LogReader reads what a Store holds. Implementations must be safe for
// concurrent use if the runtime reads from HTTP handlers.
type LogReader interface {
	// Entries returns up to count consecutive entries of app starting at
	// index from, stopping early once their bodies exceed bytesMax in total
	// (always at least one entry if from exists) or at the end of the log.
	Entries(app string, from uint64, count int, bytesMax int) ([]Entry, error)
	// Proofs returns the stored finalize proofs of app with from ≤ index ≤
	// to, increasing index, at most limit of them.
	Proofs(app string, from, to uint64, limit int) ([]wire.Proof, error)
	// LastProof returns the stored finalize proof with the highest index.
	LastProof(app string) (wire.Proof, bool, error)
}

// Store is the durable state of a node. The runtime's is bbolt
// (sequencer/store); MemoryStore is the in-memory twin. The core reads the
// log through LogReader; only the runtime calls Save.
type Store interface {
	LogReader
	// Load returns what a restarted node needs. An empty store returns an
	// empty Snapshot.
	Load() (*Snapshot, error)
	// Save applies one Persist atomically and durably (one transaction,
	// fsynced) before returning.
	Save(p *Persist) error
}

// AppSnapshot is one app as loaded from the store.
type AppSnapshot struct {
	Hard AppHardState
	// Entries is the log after Hard.Finalized's index, consecutive and
	// increasing.
	Entries []Entry
	// Pending is every pending batch, increasing Seq.
	Pending []Pending
}

// Snapshot is what NewNode reads from the store.
type Snapshot struct {
	Hard HardState
	// Apps are ordered by name.
	Apps []AppSnapshot
}

// Page is a run of finalized batches of one app and the finalize proof of
// the last one.
type Page struct {
	App     string
	Entries []Entry
	// Proof is the finalize proof of the last entry; when Entries is empty
	// it is the app's last finalize proof, nil if nothing is final yet.
	Proof *wire.Proof
}

// LockDigest is the EIP-712 digest nodes BLS-sign to lock a chain prefix.
func LockDigest(d eip712.Domain, app string, view, index uint64, chainingHash wire.Hash) [32]byte {
	return d.Digest(&eip712.Lock{App: app, View: view, Index: index, ChainingHash: chainingHash})
}

// FinalizeDigest is the EIP-712 digest nodes BLS-sign to finalize a prefix.
func FinalizeDigest(d eip712.Domain, app string, view, index uint64, chainingHash wire.Hash) [32]byte {
	return d.Digest(&eip712.Finalize{App: app, View: view, Index: index, ChainingHash: chainingHash})
}

// ProofDigest is the digest a proof's signature covers.
func ProofDigest(d eip712.Domain, app string, p *wire.Proof) [32]byte {
	if p.Kind == wire.KindLock {
		return LockDigest(d, app, p.View, p.Index, p.ChainingHash)
	}
	return FinalizeDigest(d, app, p.View, p.Index, p.ChainingHash)
}

// disputeTag domain-separates dispute signatures from every EIP-712
// digest (those start with 0x19 0x01) and from other chains.
const disputeTag = "seqbook/sequencer/dispute/v1"

// DisputeDigest is what a node BLS-signs to dispute the leader of view:
// keccak256(disputeTag || uint64be(chainID) || uint64be(view)).
func DisputeDigest(chainID, view uint64) [32]byte {
	var b [16]byte
	putU64(b[:8], chainID)
	putU64(b[8:], view)
	return eip712.Keccak256([]byte(disputeTag), b[:])
}

// BatchHash is keccak256(uint64be(timestamp) || body) (DESIGN §4).
func BatchHash(timestampMs uint64, body []byte) wire.Hash {
	var b [8]byte
	putU64(b[:], timestampMs)
	return eip712.Keccak256(b[:], body)
}

// ChainHash is keccak256(prev || batchHash).
func ChainHash(prev, batchHash wire.Hash) wire.Hash {
	return eip712.Keccak256(prev[:], batchHash[:])
}

func putU64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
