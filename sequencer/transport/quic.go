package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// alpn names the protocol on the TLS layer so a stray QUIC client (an
// HTTP/3 browser) fails the handshake instead of reaching our streams.
const alpn = "seqbook-node/1"

// QUIC application error codes sent when we close a connection.
const (
	codeClosing    quic.ApplicationErrorCode = 0
	codeAuthFailed quic.ApplicationErrorCode = 1
	codeReplaced   quic.ApplicationErrorCode = 2
	codeBusy       quic.ApplicationErrorCode = 3
	codeProtocol   quic.ApplicationErrorCode = 4
)

// QUICConfig configures a QUIC transport.
type QUICConfig struct {
	// Cluster is the membership: who may connect, where peers listen, and
	// the BLS keys hellos are checked against.
	Cluster *cluster.Cluster
	// Self is this node's index in Cluster.Nodes; Key must be its BLS key.
	Self int
	Key  *bls.SecretKey
	// ListenAddr is the UDP address to listen on; empty means this node's
	// quic address from the cluster file. Set it when the cluster file
	// names an address the machine cannot bind (behind NAT, in a container).
	ListenAddr string

	// QueueMessagesMax and QueueBytesMax bound each peer's outbound queue;
	// the oldest messages are dropped past either (see outQueue).
	QueueMessagesMax int
	QueueBytesMax    int
	// InboundMessagesMax is the capacity of the Recv channel. When it is
	// full, readers wait, which backs pressure up into QUIC flow control
	// of the peers that send too much instead of growing memory.
	InboundMessagesMax int
	// FrameBytesMax bounds one message; the largest wire message (a batch
	// of 1 MiB plus its envelope, or a sync answer) must fit.
	FrameBytesMax int
	// PendingHandshakesMax bounds inbound connections that have not
	// authenticated yet, so strangers cannot make us verify BLS
	// signatures without limit.
	PendingHandshakesMax int

	// HandshakeTimeout bounds the QUIC+TLS handshake plus the hello
	// exchange.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one frame write; a peer that does not read for
	// that long is disconnected and redialed.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection that received nothing (not even a
	// keep-alive) for that long: how fast a dead peer is noticed.
	IdleTimeout time.Duration
	// KeepAlive is how often an idle connection pings.
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the delay between dial attempts to
	// a peer that is down (doubling, with jitter).
	BackoffMin time.Duration
	BackoffMax time.Duration

	// Logger gets connection events; nil discards them.
	Logger *slog.Logger
	// Metrics receives counters; nil means a private set.
	Metrics *Metrics
}

// DefaultQUICConfig returns the limits and timeouts of a production node;
// the caller fills Cluster, Self and Key.
func DefaultQUICConfig() QUICConfig {
	return QUICConfig{
		QueueMessagesMax:     4096,
		QueueBytesMax:        64 << 20,
		InboundMessagesMax:   4096,
		FrameBytesMax:        DefaultFrameBytesMax,
		PendingHandshakesMax: 64,
		HandshakeTimeout:     5 * time.Second,
		WriteTimeout:         5 * time.Second,
		IdleTimeout:          5 * time.Second,
		KeepAlive:            1 * time.Second,
		BackoffMin:           50 * time.Millisecond,
		BackoffMax:           2 * time.Second,
	}
}

// DefaultFrameBytesMax is the default bound on one message: a few
// maximum-size batches plus envelopes. The node sets FrameBytesMax from the
// wire package's own bound.
const DefaultFrameBytesMax = 16<<20 + 64<<10

// ValidateBasic checks the configuration without touching the network.
func (c *QUICConfig) ValidateBasic() error {
	switch {
	case c.Cluster == nil:
		return errors.New("transport: no cluster")
	case c.Key == nil:
		return errors.New("transport: no BLS key")
	case c.Self < 0 || c.Self >= len(c.Cluster.Nodes):
		return fmt.Errorf("transport: self index %d outside the cluster", c.Self)
	case c.QueueMessagesMax < 1 || c.QueueBytesMax < 1 || c.InboundMessagesMax < 1:
		return errors.New("transport: queue bounds must be positive")
	case c.FrameBytesMax < 1 || c.FrameBytesMax > 1<<30:
		return fmt.Errorf("transport: frame bound %d outside 1..1GiB", c.FrameBytesMax)
	case c.QueueBytesMax < c.FrameBytesMax:
		return errors.New("transport: QueueBytesMax must hold at least one maximum frame")
	case c.PendingHandshakesMax < 1:
		return errors.New("transport: PendingHandshakesMax must be positive")
	case c.HandshakeTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.KeepAlive <= 0:
		return errors.New("transport: timeouts must be positive")
	case c.KeepAlive >= c.IdleTimeout:
		return errors.New("transport: KeepAlive must be shorter than IdleTimeout")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return errors.New("transport: need 0 < BackoffMin <= BackoffMax")
	}
	return nil
}

// QUIC is the network transport. Each node dials every peer and uses that
// connection only to send; it accepts connections from peers and only
// reads from them. One connection per direction keeps both sides simple
// (no tie-break between two nodes dialing each other at once) and lets a
// restarted node be redialed by everyone on its own.
type QUIC struct {
	cfg     QUICConfig
	auth    *authenticator
	log     *slog.Logger
	metrics *Metrics

	udp       *net.UDPConn
	tr        *quic.Transport
	ln        *quic.Listener
	tlsServer *tls.Config
	tlsClient *tls.Config
	qconf     *quic.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once

	peers      []*peer // indexed like Cluster.Nodes; nil at Self
	recv       chan Message
	handshakes chan struct{} // semaphore of PendingHandshakesMax

	mu      sync.Mutex
	inbound map[int]*quic.Conn // the live authenticated inbound connection per peer
}

type peer struct {
	index int
	id    string
	addr  string
	queue *outQueue
	up    atomic.Bool // an authenticated outbound connection is live
	conn  atomic.Pointer[quic.Conn]
}

var _ Transport = (*QUIC)(nil)

// NewQUIC listens and starts dialing every peer. Close stops it.
func NewQUIC(cfg QUICConfig) (*QUIC, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg.Cluster, cfg.Self, cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &Metrics{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	self := cfg.Cluster.Nodes[cfg.Self]
	log = log.With("node", self.ID)
	listen := cfg.ListenAddr
	if listen == "" {
		listen = self.QUIC
	}
	cert, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	udpAddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("transport: listen address %q: %w", listen, err)
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", listen, err)
	}
	// The stateless-reset key is derived from the node's secret so that a
	// restarted node (same key, new process) resets the connections its
	// peers still hold to its previous incarnation: they notice at once
	// instead of after IdleTimeout. A hash of the secret reveals nothing
	// about it.
	resetKey := quic.StatelessResetKey(eip712.Keccak256([]byte("seqbook/quic-stateless-reset/v1"), cfg.Key.Bytes()))
	tr := &quic.Transport{Conn: udp, StatelessResetKey: &resetKey}
	t := &QUIC{
		cfg: cfg, auth: auth, log: log, metrics: cfg.Metrics,
		udp: udp, tr: tr,
		tlsServer: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{alpn},
		},
		tlsClient: &tls.Config{
			MinVersion: tls.VersionTLS13,
			NextProtos: []string{alpn},
			// The certificate is a throwaway that proves nothing: the
			// peer's identity is checked by its BLS-signed hello bound to
			// this session's exporter (see auth.go), which a man in the
			// middle cannot produce. TLS here gives confidentiality and
			// the session binding, not identity.
			InsecureSkipVerify: true,
		},
		qconf: &quic.Config{
			HandshakeIdleTimeout:  cfg.HandshakeTimeout,
			MaxIdleTimeout:        cfg.IdleTimeout,
			KeepAlivePeriod:       cfg.KeepAlive,
			MaxIncomingStreams:    1, // the dialer opens exactly one stream
			MaxIncomingUniStreams: -1,
		},
		peers:      make([]*peer, len(cfg.Cluster.Nodes)),
		recv:       make(chan Message, cfg.InboundMessagesMax),
		handshakes: make(chan struct{}, cfg.PendingHandshakesMax),
		inbound:    make(map[int]*quic.Conn),
	}
	t.ln, err = tr.Listen(t.tlsServer, t.qconf)
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("transport: quic listen on %s: %w", listen, err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for i, n := range cfg.Cluster.Nodes {
		if i == cfg.Self {
			continue
		}
		t.peers[i] = &peer{index: i, id: n.ID, addr: n.QUIC, queue: newOutQueue(cfg.QueueMessagesMax, cfg.QueueBytesMax)}
	}
	t.wg.Add(1)
	go t.acceptLoop()
	for _, p := range t.peers {
		if p != nil {
			t.wg.Add(1)
			go t.runPeer(p)
		}
	}
	log.Info("quic transport listening", "addr", udp.LocalAddr().String())
	return t, nil
}

// Addr is the UDP address the transport listens on.
func (t *QUIC) Addr() net.Addr { return t.udp.LocalAddr() }

// Metrics returns the transport's counters.
func (t *QUIC) Metrics() *Metrics { return t.metrics }

// Send implements Transport.
func (t *QUIC) Send(to int, data []byte) {
	if t.closed.Load() || to < 0 || to >= len(t.peers) || t.peers[to] == nil ||
		len(data) == 0 || len(data) > t.cfg.FrameBytesMax {
		t.metrics.DroppedInvalid.Add(1)
		return
	}
	if evicted := t.peers[to].queue.push(data); evicted > 0 {
		t.metrics.DroppedQueueFull.Add(uint64(evicted))
	}
}

// Recv implements Transport.
func (t *QUIC) Recv() <-chan Message { return t.recv }

// PeerStatus is what the transport knows about one peer.
type PeerStatus struct {
	ID       string
	Outbound bool // our authenticated connection to it is up
	Inbound  bool // its authenticated connection to us is up
	Queued   int  // messages waiting for it
}

// Peers reports every peer's connection state, in cluster order
// (excluding this node).
func (t *QUIC) Peers() []PeerStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []PeerStatus
	for _, p := range t.peers {
		if p == nil {
			continue
		}
		_, in := t.inbound[p.index]
		out = append(out, PeerStatus{ID: p.id, Outbound: p.up.Load(), Inbound: in, Queued: p.queue.len()})
	}
	return out
}

// MinRTT is the smallest round trip measured on the connection to peer:
// QUIC's min_rtt, the network's share of a round trip (a receiver's
// acknowledgement delay is taken out, so a busy peer does not lengthen
// it). ok is false while there is no connection or no sample yet.
func (t *QUIC) MinRTT(peer int) (rtt time.Duration, ok bool) {
	if peer < 0 || peer >= len(t.peers) || t.peers[peer] == nil {
		return 0, false
	}
	conn := t.peers[peer].conn.Load()
	if conn == nil {
		t.mu.Lock()
		conn = t.inbound[peer]
		t.mu.Unlock()
	}
	if conn == nil {
		return 0, false
	}
	rtt = conn.ConnectionStats().MinRTT
	return rtt, rtt > 0
}

// Close implements Transport.
func (t *QUIC) Close() error {
	t.once.Do(func() {
		t.closed.Store(true)
		t.cancel()
		t.ln.Close()
		// Connections close through their context.AfterFunc hooks with a
		// CONNECTION_CLOSE the peers see at once; the transport's Close
		// then tears down anything left and stops its read loop.
		t.wg.Wait()
		t.tr.Close()
		t.udp.Close()
		close(t.recv)
		t.log.Info("quic transport closed")
	})
	return nil
}

// acceptLoop takes inbound connections; each is authenticated in its own
// goroutine, at most PendingHandshakesMax at a time.
func (t *QUIC) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return // listener closed or context cancelled
		}
		select {
		case t.handshakes <- struct{}{}:
		default:
			t.metrics.AuthRejected.Add(1)
			t.log.Warn("refusing connection: too many pending handshakes", "remote", conn.RemoteAddr().String())
			conn.CloseWithError(codeBusy, "busy")
			continue
		}
		t.wg.Add(1)
		go t.serveInbound(conn)
	}
}

// serveInbound authenticates a dialer and then reads its messages until
// the connection ends.
func (t *QUIC) serveInbound(conn *quic.Conn) {
	defer t.wg.Done()
	stop := context.AfterFunc(t.ctx, func() { conn.CloseWithError(codeClosing, "closing") })
	defer stop()
	remote := conn.RemoteAddr().String()

	from, stream, err := t.acceptHello(conn)
	<-t.handshakes
	if err != nil {
		t.metrics.AuthRejected.Add(1)
		t.log.Warn("refused inbound connection", "remote", remote, "reason", err.Error())
		conn.CloseWithError(codeAuthFailed, "authentication failed")
		return
	}
	t.metrics.InboundAccepted.Add(1)
	peerID := t.cfg.Cluster.Nodes[from].ID
	t.mu.Lock()
	if old := t.inbound[from]; old != nil {
		// The peer redialed (it restarted, or its side saw the old
		// connection die first): the newest authenticated one wins.
		old.CloseWithError(codeReplaced, "replaced by a newer connection")
	}
	t.inbound[from] = conn
	t.mu.Unlock()
	t.log.Info("peer connected in", "peer", peerID, "remote", remote)
	defer func() {
		t.mu.Lock()
		if t.inbound[from] == conn {
			delete(t.inbound, from)
		}
		t.mu.Unlock()
		conn.CloseWithError(codeClosing, "")
	}()

	for {
		data, err := readFrame(stream, t.cfg.FrameBytesMax)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Info("peer connection in ended", "peer", peerID, "reason", err.Error())
			}
			if errors.Is(err, errFrameEmpty) || errors.Is(err, errFrameTooLarge) {
				conn.CloseWithError(codeProtocol, "bad frame")
			}
			return
		}
		select {
		case t.recv <- Message{From: from, Data: data}:
			t.metrics.ReceivedMessages.Add(1)
			t.metrics.ReceivedBytes.Add(uint64(len(data)))
		case <-t.ctx.Done():
			return
		}
	}
}

// acceptHello runs the listener side of the handshake: read the dialer's
// hello, check it, answer with ours.
func (t *QUIC) acceptHello(conn *quic.Conn) (int, *quic.Stream, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	stream, err := conn.AcceptStream(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("no stream: %w", err)
	}
	deadline := time.Now().Add(t.cfg.HandshakeTimeout)
	stream.SetDeadline(deadline)
	b, err := readFrame(stream, helloBytesMax)
	if err != nil {
		return -1, nil, fmt.Errorf("reading hello: %w", err)
	}
	ekm, err := exporter(conn)
	if err != nil {
		return -1, nil, err
	}
	from, err := t.auth.checkHello(b, roleDialer, -1, ekm)
	if err != nil {
		return -1, nil, err
	}
	if err := writeFrame(stream, t.auth.makeHello(roleListener, from, ekm), helloBytesMax); err != nil {
		return -1, nil, fmt.Errorf("writing hello: %w", err)
	}
	stream.SetDeadline(time.Time{})
	return from, stream, nil
}

// runPeer keeps an authenticated connection to one peer and writes its
// queue to it, redialing with backoff whenever the connection fails.
func (t *QUIC) runPeer(p *peer) {
	defer t.wg.Done()
	log := t.log.With("peer", p.id, "addr", p.addr)
	backoff := t.cfg.BackoffMin
	failures := 0
	for t.ctx.Err() == nil {
		t.metrics.Dials.Add(1)
		conn, stream, err := t.dial(p)
		if err != nil {
			if t.ctx.Err() != nil {
				return // closing, not a peer problem
			}
			t.metrics.DialFailures.Add(1)
			failures++
			// Say it loudly once, then quietly while the peer stays down.
			if failures == 1 {
				log.Warn("cannot reach peer", "reason", err.Error())
			} else {
				log.Debug("cannot reach peer", "reason", err.Error(), "attempts", failures)
			}
			if !t.sleep(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, t.cfg.BackoffMax)
			continue
		}
		log.Info("peer connected out", "after_failures", failures)
		failures, backoff = 0, t.cfg.BackoffMin
		p.up.Store(true)
		p.conn.Store(conn)
		err = t.pump(p, conn, stream)
		p.conn.Store(nil)
		p.up.Store(false)
		conn.CloseWithError(codeClosing, "")
		if t.ctx.Err() != nil {
			return
		}
		log.Warn("peer connection out lost", "reason", err.Error())
	}
}

// dial connects to a peer and runs the dialer side of the handshake.
func (t *QUIC) dial(p *peer) (*quic.Conn, *quic.Stream, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	addr, err := net.ResolveUDPAddr("udp", p.addr)
	if err != nil {
		return nil, nil, err
	}
	conn, err := t.tr.Dial(ctx, addr, t.tlsClient, t.qconf)
	if err != nil {
		return nil, nil, err
	}
	fail := func(code quic.ApplicationErrorCode, err error) (*quic.Conn, *quic.Stream, error) {
		conn.CloseWithError(code, "")
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.CloseWithError(codeClosing, "") })
	defer stop()
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(codeClosing, err)
	}
	ekm, err := exporter(conn)
	if err != nil {
		return fail(codeClosing, err)
	}
	stream.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	if err := writeFrame(stream, t.auth.makeHello(roleDialer, p.index, ekm), helloBytesMax); err != nil {
		return fail(codeClosing, fmt.Errorf("writing hello: %w", err))
	}
	b, err := readFrame(stream, helloBytesMax)
	if err != nil {
		return fail(codeClosing, fmt.Errorf("reading hello: %w", err))
	}
	if _, err := t.auth.checkHello(b, roleListener, p.index, ekm); err != nil {
		t.log.Warn("peer failed authentication", "peer", p.id, "addr", p.addr, "reason", err.Error())
		return fail(codeAuthFailed, err)
	}
	stream.SetDeadline(time.Time{})
	return conn, stream, nil
}

// pump writes queued messages until the connection fails or the transport
// closes. It returns why it stopped.
func (t *QUIC) pump(p *peer, conn *quic.Conn, stream *quic.Stream) error {
	stop := context.AfterFunc(t.ctx, func() { conn.CloseWithError(codeClosing, "closing") })
	defer stop()
	for {
		for {
			data, ok := p.queue.pop()
			if !ok {
				break
			}
			stream.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			if err := writeFrame(stream, data, t.cfg.FrameBytesMax); err != nil {
				t.metrics.DroppedSendFailed.Add(1)
				return err
			}
			t.metrics.SentMessages.Add(1)
			t.metrics.SentBytes.Add(uint64(len(data)))
		}
		select {
		case <-p.queue.ready:
		case <-conn.Context().Done():
			return context.Cause(conn.Context())
		case <-t.ctx.Done():
			return t.ctx.Err()
		}
	}
}

// sleep waits d or until the transport closes; it reports whether to go on.
func (t *QUIC) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// jitter spreads d over [d/2, d) so peers that lost a node at the same
// moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + mrand.N(half)
}

// exporter returns this session's keying material for the hello.
func exporter(conn *quic.Conn) ([]byte, error) {
	state := conn.ConnectionState().TLS
	ekm, err := state.ExportKeyingMaterial(exporterLabel, nil, exporterBytes)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	return ekm, nil
}

// selfSignedCert makes the per-process TLS certificate. It carries no
// identity (see auth.go), so it is generated fresh and never stored.
func selfSignedCert() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "seqbook-node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
