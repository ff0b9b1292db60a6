package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// Authentication of a QUIC connection.
//
// TLS alone cannot say "this is node2 of the cluster": nodes have BLS keys
// in the cluster file, not X.509 certificates. So each node runs TLS 1.3
// with a throwaway self-signed certificate (it gives encryption, not
// identity), and right after the handshake both sides prove who they are
// by a BLS signature, made with their cluster key, over a digest that
// includes the TLS exporter keying material (RFC 8446 §7.5) of this very
// connection.
//
// Why the exporter and not a signature over the certificate: the exporter
// value is unique to one TLS session and both ends compute the same one
// only when there is no one in the middle (a relay holds two sessions with
// two different values). A signed hello therefore cannot be replayed on
// another connection or relayed through a man in the middle, the node keys
// never have to be turned into certificates, and nothing has to be stored:
// a fresh certificate per process is fine.
//
// The digest also names the role (dialer or listener, so a hello cannot be
// reflected back), the sender and the intended receiver ids, and the chain
// id (so a hello for one cluster is useless in another with the same keys).
// A prefix no EIP-712 digest can have keeps these signatures apart from the
// Lock/Finalize signatures made with the same key.

const (
	helloVersion = 1
	// exporterLabel names our use of the TLS exporter.
	exporterLabel = "EXPORTER-seqbook-node-auth-v1"
	exporterBytes = 32
	authPrefix    = "seqbook/quic-node-auth/v1"
	// idBytesMax bounds a node id in a hello; cluster ids are short names.
	idBytesMax = 255
	// helloBytesMax bounds the first frame so an unauthenticated peer
	// cannot make us allocate more than this before it has proved anything.
	helloBytesMax = 2 + 1 + idBytesMax + 1 + idBytesMax + bls.SignatureSize
)

// Roles of the two ends of a connection.
const (
	roleDialer   byte = 1
	roleListener byte = 2
)

// hello is the first frame each side sends on a new connection.
type hello struct {
	Role byte
	From string // the sender's node id
	To   string // the node id the sender believes it talks to
	Sig  []byte // BLS signature over helloDigest
}

func (h *hello) encode() []byte {
	b := make([]byte, 0, 2+2+len(h.From)+len(h.To)+len(h.Sig))
	b = append(b, helloVersion, h.Role)
	b = append(b, byte(len(h.From)))
	b = append(b, h.From...)
	b = append(b, byte(len(h.To)))
	b = append(b, h.To...)
	b = append(b, h.Sig...)
	return b
}

// decodeHello parses a hello; it checks the shape only (ValidateBasic),
// not the signature.
func decodeHello(b []byte) (*hello, error) {
	if len(b) < 2 {
		return nil, errors.New("hello: too short")
	}
	if b[0] != helloVersion {
		return nil, fmt.Errorf("hello: unknown version %d", b[0])
	}
	h := &hello{Role: b[1]}
	if h.Role != roleDialer && h.Role != roleListener {
		return nil, fmt.Errorf("hello: unknown role %d", h.Role)
	}
	rest := b[2:]
	var err error
	if h.From, rest, err = readShortString(rest); err != nil {
		return nil, fmt.Errorf("hello: from: %w", err)
	}
	if h.To, rest, err = readShortString(rest); err != nil {
		return nil, fmt.Errorf("hello: to: %w", err)
	}
	if len(rest) != bls.SignatureSize {
		return nil, fmt.Errorf("hello: signature must be %d bytes, got %d", bls.SignatureSize, len(rest))
	}
	h.Sig = append([]byte(nil), rest...)
	return h, nil
}

func readShortString(b []byte) (string, []byte, error) {
	if len(b) < 1 {
		return "", nil, errors.New("missing length")
	}
	n := int(b[0])
	if n == 0 {
		return "", nil, errors.New("empty id")
	}
	if len(b) < 1+n {
		return "", nil, errors.New("truncated id")
	}
	return string(b[1 : 1+n]), b[1+n:], nil
}

// helloDigest is what a hello's signature signs.
func helloDigest(chainID uint64, role byte, from, to string, ekm []byte) [32]byte {
	var chain [8]byte
	binary.BigEndian.PutUint64(chain[:], chainID)
	return eip712.Keccak256(
		[]byte(authPrefix), chain[:], []byte{role},
		[]byte{byte(len(from))}, []byte(from),
		[]byte{byte(len(to))}, []byte(to),
		ekm,
	)
}

// authenticator makes and checks hellos for one node of one cluster.
type authenticator struct {
	cluster *cluster.Cluster
	self    int
	key     *bls.SecretKey
}

func newAuthenticator(c *cluster.Cluster, self int, key *bls.SecretKey) (*authenticator, error) {
	if self < 0 || self >= len(c.Nodes) {
		return nil, fmt.Errorf("transport: node index %d outside the cluster (%d nodes)", self, len(c.Nodes))
	}
	if !key.PublicKey().Equal(c.NodeKey(self)) {
		return nil, fmt.Errorf("transport: the BLS key given is not the key of %s in the cluster file", c.Nodes[self].ID)
	}
	for _, n := range c.Nodes {
		if len(n.ID) > idBytesMax {
			return nil, fmt.Errorf("transport: node id %.20q… longer than %d bytes", n.ID, idBytesMax)
		}
	}
	return &authenticator{cluster: c, self: self, key: key}, nil
}

// makeHello signs a hello for peer `to` on a session with keying material ekm.
func (a *authenticator) makeHello(role byte, to int, ekm []byte) []byte {
	from, toID := a.cluster.Nodes[a.self].ID, a.cluster.Nodes[to].ID
	sig := a.key.Sign(helloDigest(a.cluster.ChainID, role, from, toID, ekm))
	h := hello{Role: role, From: from, To: toID, Sig: sig.Bytes()}
	return h.encode()
}

// checkHello verifies a peer's hello on a session with keying material
// ekm: the role is the one expected, it is addressed to us, it comes from
// a cluster node other than us (and from `want` when want >= 0), and it is
// signed by that node's cluster key. It returns the sender's index.
func (a *authenticator) checkHello(b []byte, role byte, want int, ekm []byte) (int, error) {
	h, err := decodeHello(b)
	if err != nil {
		return -1, err
	}
	if h.Role != role {
		return -1, fmt.Errorf("hello: role %d, expected %d", h.Role, role)
	}
	self := a.cluster.Nodes[a.self].ID
	if h.To != self {
		return -1, fmt.Errorf("hello: addressed to %q, not to us (%s)", h.To, self)
	}
	from, ok := a.cluster.NodeIndex(h.From)
	if !ok {
		return -1, fmt.Errorf("hello: %q is not a node of the cluster", h.From)
	}
	if from == a.self {
		return -1, fmt.Errorf("hello: claims to be us (%s)", self)
	}
	if want >= 0 && from != want {
		return -1, fmt.Errorf("hello: from %q, expected %q", h.From, a.cluster.Nodes[want].ID)
	}
	sig, err := bls.SignatureFromBytes(h.Sig)
	if err != nil {
		return -1, fmt.Errorf("hello: %w", err)
	}
	if !sig.Verify(a.cluster.NodeKey(from), helloDigest(a.cluster.ChainID, h.Role, h.From, h.To, ekm)) {
		return -1, fmt.Errorf("hello: signature of %q does not verify with its cluster key on this session", h.From)
	}
	return from, nil
}
