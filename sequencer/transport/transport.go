// Package transport carries the sequencer's consensus messages between
// nodes. It is a port with two implementations: QUIC (the real network,
// mutually authenticated against the cluster file) and Mem (an in-process
// network for tests). Messages are opaque bytes here; the wire package
// decodes them and the core decides what they mean.
//
// Delivery is best effort: a message may be dropped when a peer is down or
// slow, and the protocol is built to tolerate that (it retries by ticks).
// What the transport does guarantee is that a message handed to the
// receiver really comes from the node it names: an inbound message's From
// is the cluster index of an authenticated peer.
package transport

import "sync/atomic"

// Message is one inbound message.
type Message struct {
	// From is the sender's index in the cluster file's node list.
	From int
	// Data is the message bytes; the receiver owns them.
	Data []byte
}

// Transport is the port the node uses to talk to its peers.
type Transport interface {
	// Send queues data for node `to` (a cluster index) and returns at once.
	// It never blocks: when the peer's outbound queue is full the oldest
	// queued message is dropped and counted. The caller must not modify
	// data afterwards. Sending to oneself or to an unknown index is
	// dropped and counted.
	Send(to int, data []byte)
	// Recv delivers inbound messages from authenticated peers. It is
	// closed by Close.
	Recv() <-chan Message
	// Close stops every goroutine of the transport and releases its
	// sockets. It returns once they have stopped. Send after Close drops.
	Close() error
}

// Metrics counts what a transport did. The counters only go up; read them
// with Snapshot. A nil *Metrics is not allowed: use &Metrics{}.
type Metrics struct {
	SentMessages      atomic.Uint64 // frames written to a peer
	SentBytes         atomic.Uint64
	ReceivedMessages  atomic.Uint64 // frames delivered to Recv
	ReceivedBytes     atomic.Uint64
	DroppedQueueFull  atomic.Uint64 // evicted from a full outbound queue
	DroppedSendFailed atomic.Uint64 // lost with a connection that failed mid-write
	DroppedInvalid    atomic.Uint64 // Send to self, to an unknown peer, too large, or after Close
	Dials             atomic.Uint64 // outbound connection attempts
	DialFailures      atomic.Uint64 // attempts that did not end authenticated
	AuthRejected      atomic.Uint64 // inbound connections refused by the handshake
	InboundAccepted   atomic.Uint64 // inbound connections authenticated
}

// MetricsSnapshot is a copy of Metrics' counters.
type MetricsSnapshot struct {
	SentMessages, SentBytes, ReceivedMessages, ReceivedBytes uint64
	DroppedQueueFull, DroppedSendFailed, DroppedInvalid      uint64
	Dials, DialFailures, AuthRejected, InboundAccepted       uint64
}

// Snapshot reads every counter.
func (m *Metrics) Snapshot() MetricsSnapshot {
	return MetricsSnapshot{
		SentMessages: m.SentMessages.Load(), SentBytes: m.SentBytes.Load(),
		ReceivedMessages: m.ReceivedMessages.Load(), ReceivedBytes: m.ReceivedBytes.Load(),
		DroppedQueueFull: m.DroppedQueueFull.Load(), DroppedSendFailed: m.DroppedSendFailed.Load(),
		DroppedInvalid: m.DroppedInvalid.Load(),
		Dials:          m.Dials.Load(), DialFailures: m.DialFailures.Load(),
		AuthRejected: m.AuthRejected.Load(), InboundAccepted: m.InboundAccepted.Load(),
	}
}
