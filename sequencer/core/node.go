package core

import (
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Node is one sequencer node's protocol state machine. Build it with
// NewNode; drive it as the package doc says.
type Node struct {
	cfg    Config
	crypto Crypto
	store  Store
}

// NewNode builds a node from cfg, its crypto and its store, loading what a
// previous run persisted (a restarted node is a new Node over the same
// store). It fails on an invalid config or an unreadable store.
func NewNode(cfg Config, crypto Crypto, store Store) (*Node, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	return &Node{cfg: cfg, crypto: crypto, store: store}, nil
}

// Tick advances abstract time by one tick. nowMs is the runtime's wall
// clock in unix milliseconds: the leader stamps batches with it (never
// decreasing) and followers compare leader stamps with it.
func (n *Node) Tick(nowMs uint64) {}

// Step processes one message from node from (a cluster index the transport
// authenticated). It returns an error when the message is invalid for the
// protocol (bad signature, inconsistent hashes, wrong sender); the runtime
// logs it and may count it against the peer. Stale or duplicate messages
// are not errors.
func (n *Node) Step(from int, msg wire.Message) error { return nil }

// Submit adds a batch received over HTTP to the app's initialized batches.
// Errors: ErrInvalidApp, ErrBodyTooLarge, ErrInvalidBody, ErrBacklogFull,
// ErrTooManyApps; on error nothing changed.
func (n *Node) Submit(app string, body []byte) error { return nil }

// HasReady reports whether Ready has anything to persist, send or report.
func (n *Node) HasReady() bool { return false }

// Ready returns what changed since the last Advance. Handle it (Persist
// first, then Messages, then Finalized) and call Advance.
func (n *Node) Ready() Ready { return Ready{} }

// Advance tells the node the last Ready was handled: persisted, sent and
// reported.
func (n *Node) Advance() {}

// Status returns a snapshot of the node's view, leader and per-app indexes.
func (n *Node) Status() Status { return Status{Node: n.cfg.Self} }
