// Package eip712 hashes seqbook's typed messages exactly as EIP-712
// (eth_signTypedData_v4) does, with a static encoder per type: no
// reflection, no JSON, so hashing is cheap enough for the hot path. The
// generic go-ethereum implementation is the oracle in the tests.
//
// Every digest is keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash) with
// the domain {name: "seqbook", version: "1", chainId} (DESIGN §3.1).
package eip712

import (
	"encoding/binary"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"golang.org/x/crypto/sha3"
)

// Domain name and version fixed by DESIGN §3.1.
const (
	DomainName    = "seqbook"
	DomainVersion = "1"
	// DefaultChainID is the chain id of a local cluster.
	DefaultChainID uint64 = 31337
)

// Type strings, exactly as signed. Changing one changes every signature.
const (
	TypeDomain     = "EIP712Domain(string name,string version,uint256 chainId)"
	TypeOrder      = "Order(address trader,string market,string side,string orderType,uint256 quantity,uint256 price,uint64 nonce,uint64 expiry)"
	TypeCancel     = "Cancel(address trader,bytes32 orderId,uint64 nonce,uint64 expiry)"
	TypeCancelAll  = "CancelAll(address trader,string market,uint64 nonce,uint64 expiry)"
	TypeWithdraw   = "Withdraw(address trader,string token,uint256 amount,address recipient,uint64 nonce,uint64 expiry)"
	TypeLock       = "Lock(string app,uint64 view,uint64 index,bytes32 chainingHash)"
	TypeFinalize   = "Finalize(string app,uint64 view,uint64 index,bytes32 chainingHash)"
	TypeBalance    = "Balance(string app,address account,string token,uint256 balance,uint64 index)"
	TypeWithdrawal = "Withdrawal(string app,bytes32 id,address trader,string token,uint256 amount,address recipient,uint64 index)"
	TypeState      = "State(string app,uint64 index,bytes32 stateDigest)"
)

var (
	typeHashDomain     = Keccak256([]byte(TypeDomain))
	typeHashOrder      = Keccak256([]byte(TypeOrder))
	typeHashCancel     = Keccak256([]byte(TypeCancel))
	typeHashCancelAll  = Keccak256([]byte(TypeCancelAll))
	typeHashWithdraw   = Keccak256([]byte(TypeWithdraw))
	typeHashLock       = Keccak256([]byte(TypeLock))
	typeHashFinalize   = Keccak256([]byte(TypeFinalize))
	typeHashBalance    = Keccak256([]byte(TypeBalance))
	typeHashWithdrawal = Keccak256([]byte(TypeWithdrawal))
	typeHashState      = Keccak256([]byte(TypeState))
)

// Domain is the EIP-712 domain of one cluster. Build it with NewDomain so
// the separator is computed once.
type Domain struct {
	ChainID   uint64
	separator [32]byte
}

// NewDomain returns the seqbook domain for a chain id.
func NewDomain(chainID uint64) Domain {
	var e encoder
	e.word(typeHashDomain)
	e.str(DomainName)
	e.str(DomainVersion)
	e.uint(chainID)
	return Domain{ChainID: chainID, separator: Keccak256(e.buf)}
}

// Separator returns the domain separator.
func (d Domain) Separator() [32]byte { return d.separator }

// Message is a typed message: anything with an EIP-712 struct hash.
type Message interface {
	StructHash() [32]byte
}

// Digest returns the EIP-712 digest of a message under this domain: what
// is signed, with secp256k1 by traders and with BLS by nodes and replicas.
func (d Domain) Digest(m Message) [32]byte {
	if d.separator == ([32]byte{}) {
		panic("eip712: Domain used without NewDomain")
	}
	sh := m.StructHash()
	var b [66]byte
	b[0], b[1] = 0x19, 0x01
	copy(b[2:34], d.separator[:])
	copy(b[34:], sh[:])
	return Keccak256(b[:])
}

// Order is a trader's order (DESIGN §3.1). Quantity and Price are in base
// units (6 decimals).
type Order struct {
	Trader    common.Address
	Market    string // "BASE/QUOTE"
	Side      string // "buy" | "sell"
	OrderType string // "limit" | "market" | "ioc" | "fok" | "post_only"
	Quantity  uint64
	Price     uint64
	Nonce     uint64
	Expiry    uint64 // unix seconds
}

// StructHash implements Message.
func (o *Order) StructHash() [32]byte {
	var e encoder
	e.word(typeHashOrder)
	e.addr(o.Trader)
	e.str(o.Market)
	e.str(o.Side)
	e.str(o.OrderType)
	e.uint(o.Quantity)
	e.uint(o.Price)
	e.uint(o.Nonce)
	e.uint(o.Expiry)
	return Keccak256(e.buf)
}

// Cancel asks to cancel a resting order.
type Cancel struct {
	Trader  common.Address
	OrderID [32]byte
	Nonce   uint64
	Expiry  uint64
}

// StructHash implements Message.
func (c *Cancel) StructHash() [32]byte {
	var e encoder
	e.word(typeHashCancel)
	e.addr(c.Trader)
	e.word(c.OrderID)
	e.uint(c.Nonce)
	e.uint(c.Expiry)
	return Keccak256(e.buf)
}

// CancelAll asks to cancel every open order of the trader in one market,
// or in every market when Market is empty (DESIGN §8).
type CancelAll struct {
	Trader common.Address
	Market string // "BASE/QUOTE", or "" for every market
	Nonce  uint64
	Expiry uint64
}

// StructHash implements Message.
func (c *CancelAll) StructHash() [32]byte {
	var e encoder
	e.word(typeHashCancelAll)
	e.addr(c.Trader)
	e.str(c.Market)
	e.uint(c.Nonce)
	e.uint(c.Expiry)
	return Keccak256(e.buf)
}

// Withdraw asks to move funds out of the orderbook to a recipient.
type Withdraw struct {
	Trader    common.Address
	Token     string
	Amount    uint64
	Recipient common.Address
	Nonce     uint64
	Expiry    uint64
}

// StructHash implements Message.
func (w *Withdraw) StructHash() [32]byte {
	var e encoder
	e.word(typeHashWithdraw)
	e.addr(w.Trader)
	e.str(w.Token)
	e.uint(w.Amount)
	e.addr(w.Recipient)
	e.uint(w.Nonce)
	e.uint(w.Expiry)
	return Keccak256(e.buf)
}

// Lock is what a sequencer node signs to lock a chain prefix (DESIGN §4).
type Lock struct {
	App          string
	View         uint64
	Index        uint64
	ChainingHash [32]byte
}

// StructHash implements Message.
func (l *Lock) StructHash() [32]byte {
	var e encoder
	e.word(typeHashLock)
	e.str(l.App)
	e.uint(l.View)
	e.uint(l.Index)
	e.word(l.ChainingHash)
	return Keccak256(e.buf)
}

// Finalize is what a sequencer node signs to finalize a locked prefix.
type Finalize struct {
	App          string
	View         uint64
	Index        uint64
	ChainingHash [32]byte
}

// StructHash implements Message.
func (f *Finalize) StructHash() [32]byte {
	var e encoder
	e.word(typeHashFinalize)
	e.str(f.App)
	e.uint(f.View)
	e.uint(f.Index)
	e.word(f.ChainingHash)
	return Keccak256(e.buf)
}

// Balance is what a replica signs when it answers a balance read.
type Balance struct {
	App     string
	Account common.Address
	Token   string
	Balance uint64
	Index   uint64
}

// StructHash implements Message.
func (b *Balance) StructHash() [32]byte {
	var e encoder
	e.word(typeHashBalance)
	e.str(b.App)
	e.addr(b.Account)
	e.str(b.Token)
	e.uint(b.Balance)
	e.uint(b.Index)
	return Keccak256(e.buf)
}

// Withdrawal is what a replica signs for a recorded withdrawal, the record a
// bridge pays out on.
type Withdrawal struct {
	App       string
	ID        [32]byte
	Trader    common.Address
	Token     string
	Amount    uint64
	Recipient common.Address
	Index     uint64
}

// StructHash implements Message.
func (w *Withdrawal) StructHash() [32]byte {
	var e encoder
	e.word(typeHashWithdrawal)
	e.str(w.App)
	e.word(w.ID)
	e.addr(w.Trader)
	e.str(w.Token)
	e.uint(w.Amount)
	e.addr(w.Recipient)
	e.uint(w.Index)
	return Keccak256(e.buf)
}

// encoder builds encodeData: one 32-byte word per field.
type encoder struct{ buf []byte }

func (e *encoder) word(w [32]byte) {
	if e.buf == nil {
		e.buf = make([]byte, 0, 32*9)
	}
	e.buf = append(e.buf, w[:]...)
}

// str encodes a string field as the keccak256 of its UTF-8 bytes.
func (e *encoder) str(s string) { e.word(stringHash(s)) }

// The string fields of the messages on the hot path (market, side, order
// type, token, app) take a handful of values, so their hashes are cached:
// an order's struct hash then costs two keccak permutations instead of
// five. Only short strings are cached, and at most stringHashesMax of them:
// the strings come from untrusted requests, and past the bound a hash is
// simply computed each time.
const (
	stringHashLenMax = 64
	stringHashesMax  = 1024
)

// A map under a read-write lock rather than a sync.Map: a sync.Map key is
// an interface, and boxing a string allocates on every lookup.
var stringHashes = struct {
	sync.RWMutex
	m map[string][32]byte
}{m: map[string][32]byte{}}

// stringHash is keccak256(s), cached for the short strings seen first.
func stringHash(s string) [32]byte {
	if len(s) > stringHashLenMax {
		return Keccak256([]byte(s))
	}
	stringHashes.RLock()
	h, ok := stringHashes.m[s]
	stringHashes.RUnlock()
	if ok {
		return h
	}
	h = Keccak256([]byte(s))
	stringHashes.Lock()
	if len(stringHashes.m) < stringHashesMax {
		stringHashes.m[s] = h
	}
	stringHashes.Unlock()
	return h
}

// uint encodes a uint64 or uint256 field (values here fit 64 bits).
func (e *encoder) uint(v uint64) {
	var w [32]byte
	binary.BigEndian.PutUint64(w[24:], v)
	e.word(w)
}

// addr encodes an address left-padded to 32 bytes.
func (e *encoder) addr(a common.Address) {
	var w [32]byte
	copy(w[12:], a[:])
	e.word(w)
}

// Keccak256 is the legacy Keccak-256 hash Ethereum uses. (The hash state
// stays on the stack: pooling it would make every input escape.)
func Keccak256(data ...[]byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	for _, d := range data {
		h.Write(d)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// State is a replica's state attestation: the state digest it computed
// after applying index (docs/verification.md). Replicas compare theirs; a
// quorum of them signing the same one proves the state at that index.
type State struct {
	App         string
	Index       uint64
	StateDigest [32]byte
}

// StructHash implements Message.
func (s *State) StructHash() [32]byte {
	var e encoder
	e.word(typeHashState)
	e.str(s.App)
	e.uint(s.Index)
	e.word(s.StateDigest)
	return Keccak256(e.buf)
}
