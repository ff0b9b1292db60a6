package transport

import (
	"sync"
	"sync/atomic"
)

// MemNetwork is an in-process network of Mem endpoints for tests: messages
// go straight into the receiver's inbound channel (copied, so sender and
// receiver never share a buffer). Links can be cut to model partitions.
// It is safe for concurrent use.
type MemNetwork struct {
	mu        sync.Mutex
	endpoints []*Mem
	cut       map[[2]int]bool // (from, to) pairs that drop everything
	inboxMax  int
}

// NewMemNetwork makes a network of n endpoints whose inboxes hold up to
// inboxMax messages each (past that, sends are dropped and counted).
func NewMemNetwork(n, inboxMax int) *MemNetwork {
	if n < 1 || inboxMax < 1 {
		panic("transport: MemNetwork needs n >= 1 and inboxMax >= 1")
	}
	net := &MemNetwork{cut: make(map[[2]int]bool), inboxMax: inboxMax}
	for i := 0; i < n; i++ {
		net.endpoints = append(net.endpoints, &Mem{
			net: net, self: i, recv: make(chan Message, inboxMax), metrics: &Metrics{},
		})
	}
	return net
}

// Endpoint returns node i's transport.
func (n *MemNetwork) Endpoint(i int) *Mem { return n.endpoints[i] }

// SetLink cuts (up=false) or restores the one-way link from → to.
func (n *MemNetwork) SetLink(from, to int, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if up {
		delete(n.cut, [2]int{from, to})
	} else {
		n.cut[[2]int{from, to}] = true
	}
}

// Isolate cuts (or restores) every link to and from node i.
func (n *MemNetwork) Isolate(i int, isolated bool) {
	for j := range n.endpoints {
		if j != i {
			n.SetLink(i, j, !isolated)
			n.SetLink(j, i, !isolated)
		}
	}
}

func (n *MemNetwork) linkUp(from, to int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[[2]int{from, to}]
}

// Mem is one endpoint of a MemNetwork.
type Mem struct {
	net     *MemNetwork
	self    int
	recv    chan Message
	metrics *Metrics

	mu     sync.RWMutex // guards closing recv against concurrent sends
	closed atomic.Bool
}

var _ Transport = (*Mem)(nil)

// Metrics returns the endpoint's counters.
func (m *Mem) Metrics() *Metrics { return m.metrics }

// Send implements Transport. It never blocks: a full inbox, a cut link or
// a closed receiver drops the message and counts it.
func (m *Mem) Send(to int, data []byte) {
	if m.closed.Load() || to < 0 || to >= len(m.net.endpoints) || to == m.self || len(data) == 0 {
		m.metrics.DroppedInvalid.Add(1)
		return
	}
	if !m.net.linkUp(m.self, to) {
		m.metrics.DroppedSendFailed.Add(1)
		return
	}
	dst := m.net.endpoints[to]
	dst.mu.RLock()
	defer dst.mu.RUnlock()
	if dst.closed.Load() {
		m.metrics.DroppedSendFailed.Add(1)
		return
	}
	select {
	case dst.recv <- Message{From: m.self, Data: append([]byte(nil), data...)}:
		m.metrics.SentMessages.Add(1)
		m.metrics.SentBytes.Add(uint64(len(data)))
		dst.metrics.ReceivedMessages.Add(1)
		dst.metrics.ReceivedBytes.Add(uint64(len(data)))
	default:
		m.metrics.DroppedQueueFull.Add(1)
	}
}

// Recv implements Transport.
func (m *Mem) Recv() <-chan Message { return m.recv }

// Close implements Transport.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed.Swap(true) {
		close(m.recv)
	}
	return nil
}
