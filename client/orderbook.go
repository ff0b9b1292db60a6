package client

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

// DefaultExpiry is how long after signing an operation may still be
// sequenced when the caller gives no expiry. Ten minutes rides out a
// sequencer view change or two; a replica refuses expiries more than an
// hour ahead (DESIGN §3.1).
const DefaultExpiry = 10 * time.Minute

// nonceLast is the last nonce NextNonce handed out, shared by every client
// of the process so two Orderbooks never reuse one.
var nonceLast atomic.Uint64

// NextNonce returns a fresh nonce: the current unix time in nanoseconds,
// or the previous nonce + 1 when the clock has not moved past it. Nonces
// from one process are strictly increasing; a restarted process starts
// from its clock, so it does not reuse the nonces of an earlier run unless
// the clock went back or that run issued nonces faster than one per
// nanosecond. A replica only needs (trader, nonce) pairs to be unique
// within their expiry.
func NextNonce() uint64 {
	for {
		last := nonceLast.Load()
		n := uint64(time.Now().UnixNano())
		if n <= last {
			n = last + 1
		}
		if nonceLast.CompareAndSwap(last, n) {
			return n
		}
	}
}

// Orderbook is a client of one replica's HTTP API (DESIGN §5). It signs
// operations locally with the caller's key; the replica only relays them.
// It is safe for concurrent use.
type Orderbook struct {
	base string
	o    options

	mu     sync.Mutex
	domain *eip712.Domain
}

// NewOrderbook returns a client of the replica at baseURL ("host:port" or
// "http(s)://host:port"). Options: WithChainID (recommended), WithHTTPClient,
// WithTimeout, WithAnswerBytesMax.
func NewOrderbook(baseURL string, opts ...Option) (*Orderbook, error) {
	o := buildOptions(opts)
	o.component = "replica"
	base, err := checkBaseURL(o.scheme, baseURL)
	if err != nil {
		return nil, fmt.Errorf("replica URL: %w", err)
	}
	ob := &Orderbook{base: base, o: o}
	if o.chainID != 0 {
		d := eip712.NewDomain(o.chainID)
		ob.domain = &d
	}
	return ob, nil
}

// checkBaseURL turns "host:port" or a URL into a clean base URL.
func checkBaseURL(scheme, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty")
	}
	if !strings.Contains(s, "://") {
		s = scheme + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: a base URL has no query or fragment", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// URL returns the replica's base URL.
func (ob *Orderbook) URL() string { return ob.base }

// Domain returns the EIP-712 domain operations are signed under: the one
// of WithChainID, or else the chain id the replica serves at GET /eip712
// (fetched once). The name and version are checked to be seqbook's.
func (ob *Orderbook) Domain(ctx context.Context) (eip712.Domain, error) {
	ob.mu.Lock()
	d := ob.domain
	ob.mu.Unlock()
	if d != nil {
		return *d, nil
	}
	var ans struct {
		Domain struct {
			Name    string          `json:"name"`
			Version string          `json:"version"`
			ChainID json.RawMessage `json:"chainId"`
		} `json:"domain"`
	}
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/eip712", &ans); err != nil {
		return eip712.Domain{}, fmt.Errorf("reading the EIP-712 domain: %w", err)
	}
	if ans.Domain.Name != eip712.DomainName || ans.Domain.Version != eip712.DomainVersion {
		return eip712.Domain{}, fmt.Errorf("replica serves EIP-712 domain %q version %q, want %q version %q",
			ans.Domain.Name, ans.Domain.Version, eip712.DomainName, eip712.DomainVersion)
	}
	id, err := parseChainID(ans.Domain.ChainID)
	if err != nil {
		return eip712.Domain{}, fmt.Errorf("replica's EIP-712 domain: %w", err)
	}
	nd := eip712.NewDomain(id)
	ob.mu.Lock()
	ob.domain = &nd
	ob.mu.Unlock()
	return nd, nil
}

// parseChainID reads a chain id as a JSON number, a decimal string or a
// 0x-hex string (the forms wallets' typed data use).
func parseChainID(raw json.RawMessage) (uint64, error) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("chainId: %v", err)
		}
	}
	var id uint64
	var err error
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		id, err = strconv.ParseUint(s[2:], 16, 64)
	} else {
		id, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil || id == 0 {
		return 0, fmt.Errorf("chainId %s is not a positive integer", s)
	}
	return id, nil
}

// OrderParams is an order to place. Quantity and Price are base units (6
// decimals: amount.Parse("1.5") = 1500000).
type OrderParams struct {
	Market string // "BASE/QUOTE", e.g. "ETH/USDT"
	Side   string // "buy" | "sell"
	// Type is "limit" (good till cancelled; the default when empty),
	// "market" (immediate or cancel; Price is then the worst acceptable
	// price), "ioc" (a limit order whose unfilled rest is cancelled),
	// "fok" (filled completely at once or rejected) or "post_only"
	// (rejected if it would take liquidity at entry).
	Type     string
	Quantity uint64
	Price    uint64
	// Nonce 0 means NextNonce(). Expiry 0 means now + DefaultExpiry (unix
	// seconds).
	Nonce  uint64
	Expiry uint64
}

// OpParams are the replay-protection fields of a cancel or withdrawal; the
// zero value picks defaults as in OrderParams.
type OpParams struct {
	Nonce  uint64
	Expiry uint64
}

// WithdrawParams is a withdrawal to request. Amount is base units;
// Recipient zero means the trader's own address.
type WithdrawParams struct {
	Token     string
	Amount    uint64
	Recipient common.Address
	OpParams
}

// Errors of submissions, besides *APIError.
var (
	ErrInvalidParams = errors.New("invalid parameters")
	// ErrIDMismatch means the replica answered with an id other than the
	// digest the client signed: it hashes something else than DESIGN says.
	ErrIDMismatch = errors.New("replica answered with another id than the signed digest")
)

// OrderResult is a replica's answer to a placed order.
type OrderResult struct {
	// OrderID is the order's EIP-712 digest, computed locally and checked
	// against the replica's answer.
	OrderID ID
	// Request is what was sent.
	Request obapi.OrderRequest
	// Accepted is the answer without wait; Order the order as applied with
	// wait (status, fills). With wait, an order not applied within the
	// wait comes back with Order.Status "pending" (HTTP 202: its outcome
	// is not known yet) and Accepted set as well, its Message saying how
	// to follow it.
	Accepted *obapi.OrderAccepted
	Order    *obapi.Order
	// Raw is the answer as received.
	Raw json.RawMessage
}

// OpResult is a replica's answer to a cancel or a withdrawal.
type OpResult struct {
	// ID is the operation's EIP-712 digest (for a withdrawal: the id a
	// bridge pays out on), computed locally and checked against the answer.
	ID ID
	// Accepted is the answer without wait; Result the outcome with wait.
	// With wait, an operation not applied within the wait comes back with
	// Result.Status "pending" (HTTP 202: its outcome is not known yet) and
	// Accepted set as well, its Message saying how to follow it.
	Accepted *obapi.OpAccepted
	Result   *obapi.OpResult
	Raw      json.RawMessage
}

func (ob *Orderbook) expiry(given uint64) uint64 {
	if given != 0 {
		return given
	}
	return uint64(ob.o.now().Add(DefaultExpiry).Unix())
}

func (ob *Orderbook) checkExpiry(e uint64) error {
	if now := uint64(ob.o.now().Unix()); e < now {
		return fmt.Errorf("%w: expiry %d is in the past (now %d)", ErrInvalidParams, e, now)
	}
	return nil
}

func nonce(given uint64) uint64 {
	if given != 0 {
		return given
	}
	return NextNonce()
}

func checkOrderParams(p *OrderParams) error {
	base, quote, ok := strings.Cut(p.Market, "/")
	switch {
	case !ok || base == "" || quote == "" || strings.Contains(quote, "/"):
		return fmt.Errorf("%w: market %q must be BASE/QUOTE, e.g. ETH/USDT", ErrInvalidParams, p.Market)
	case p.Side != "buy" && p.Side != "sell":
		return fmt.Errorf("%w: side %q must be buy or sell", ErrInvalidParams, p.Side)
	case !validOrderType(p.Type):
		return fmt.Errorf("%w: order type %q must be one of %s", ErrInvalidParams, p.Type, OrderTypes)
	case p.Quantity == 0 || p.Quantity > amount.Max:
		return fmt.Errorf("%w: quantity must be between 1 and %d base units", ErrInvalidParams, amount.Max)
	case p.Price == 0 || p.Price > amount.Max:
		return fmt.Errorf("%w: price must be between 1 and %d base units", ErrInvalidParams, amount.Max)
	}
	return nil
}

// waitQuery is the query of a request that waits for finality: the
// replica is told how long this client waits (the smaller of the timeout
// option and ctx's deadline, less a tenth for the answer's way back), so
// it answers before the client gives up instead of after its own default.
func (ob *Orderbook) waitQuery(ctx context.Context, wait bool) string {
	if !wait {
		return ""
	}
	budget := ob.o.timeout
	if ob.o.httpClient.Timeout > 0 {
		budget = ob.o.httpClient.Timeout
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); budget <= 0 || left < budget {
			budget = left
		}
	}
	if budget <= 0 {
		return "?wait=finalized"
	}
	serverWait := budget - budget/10
	return fmt.Sprintf("?wait=finalized&timeout=%dms", max(serverWait.Milliseconds(), 1))
}

// SignOrder builds and signs an order without sending it: the request
// body of POST /order and the order id.
func (ob *Orderbook) SignOrder(ctx context.Context, key *ecdsa.PrivateKey, p OrderParams) (obapi.OrderRequest, [32]byte, error) {
	if p.Type == "" {
		p.Type = "limit"
	}
	if err := checkOrderParams(&p); err != nil {
		return obapi.OrderRequest{}, [32]byte{}, err
	}
	p.Nonce, p.Expiry = nonce(p.Nonce), ob.expiry(p.Expiry)
	if err := ob.checkExpiry(p.Expiry); err != nil {
		return obapi.OrderRequest{}, [32]byte{}, err
	}
	d, err := ob.Domain(ctx)
	if err != nil {
		return obapi.OrderRequest{}, [32]byte{}, err
	}
	trader := ethsig.Address(key)
	m := eip712.Order{Trader: trader, Market: p.Market, Side: p.Side, OrderType: p.Type,
		Quantity: p.Quantity, Price: p.Price, Nonce: p.Nonce, Expiry: p.Expiry}
	digest := d.Digest(&m)
	sig, err := ethsig.Sign(key, digest)
	if err != nil {
		return obapi.OrderRequest{}, [32]byte{}, err
	}
	return obapi.OrderRequest{
		Trader: trader.Hex(), Market: p.Market, Side: p.Side, OrderType: p.Type,
		Quantity: obapi.Uint(p.Quantity), Price: obapi.Uint(p.Price),
		Nonce: obapi.Uint(p.Nonce), Expiry: obapi.Uint(p.Expiry),
		Signature: "0x" + hex.EncodeToString(sig),
	}, digest, nil
}

// PlaceOrder signs an order with key and submits it (POST /order). With
// wait, the replica answers once the order is finalized and applied
// (?wait=finalized) with its status and fills. The order id is the
// EIP-712 digest, known before sending; an answer with another id is
// returned together with ErrIDMismatch.
//
// Without wait, Accepted.Status is "accepted" (a sequencer node took the
// order) or "pending" (HTTP 202: the replica holds the order and keeps
// sending it, but its outcome is not known yet; follow it with Order).
// With wait, an order not applied within the wait is "pending" too
// (Order.Status; see OrderResult). To
// retry after an error or a pending answer, send the same signed request
// again with SubmitOrder (res.Request): never sign a new order for it,
// which could trade twice.
func (ob *Orderbook) PlaceOrder(ctx context.Context, key *ecdsa.PrivateKey, p OrderParams, wait bool) (*OrderResult, error) {
	req, _, err := ob.SignOrder(ctx, key, p)
	if err != nil {
		return nil, err
	}
	return ob.SubmitOrder(ctx, req, wait)
}

// SubmitOrder submits an already signed order (POST /order), as
// PlaceOrder does. It is the retry path: resending the same signed request
// can never place the order twice (the replicas apply a (trader, nonce)
// once; a replica that still holds it answers 409).
func (ob *Orderbook) SubmitOrder(ctx context.Context, req obapi.OrderRequest, wait bool) (*OrderResult, error) {
	d, err := ob.Domain(ctx)
	if err != nil {
		return nil, err
	}
	digest, err := orderDigest(d, &req)
	if err != nil {
		return nil, err
	}
	raw, err := postJSON(ctx, &ob.o, ob.base, ob.base+"/order"+ob.waitQuery(ctx, wait), req)
	if err != nil {
		return nil, err
	}
	res := &OrderResult{OrderID: digest, Request: req, Raw: raw}
	var answered string
	if wait {
		res.Order = new(obapi.Order)
		err = json.Unmarshal(raw, res.Order)
		answered = res.Order.OrderID
		if err == nil && res.Order.Status == obapi.StatusPending {
			res.Accepted = new(obapi.OrderAccepted)
			err = json.Unmarshal(raw, res.Accepted)
		}
	} else {
		res.Accepted = new(obapi.OrderAccepted)
		err = json.Unmarshal(raw, res.Accepted)
		answered = res.Accepted.OrderID
	}
	if err != nil {
		return res, fmt.Errorf("%s: malformed answer to an order: %w", ob.base, err)
	}
	if !sameID(res.OrderID, answered) {
		return res, fmt.Errorf("%w: signed %s, replica says %q", ErrIDMismatch, res.OrderID, answered)
	}
	return res, nil
}

// orderDigest is the EIP-712 digest (the order id) of a signed request.
func orderDigest(d eip712.Domain, req *obapi.OrderRequest) ([32]byte, error) {
	var u [4]uint64
	for i, f := range []struct {
		name string
		v    obapi.Number
	}{{"quantity", req.Quantity}, {"price", req.Price}, {"nonce", req.Nonce}, {"expiry", req.Expiry}} {
		v, err := strconv.ParseUint(string(f.v), 10, 64)
		if err != nil {
			return [32]byte{}, fmt.Errorf("%w: %s %q is not a base-unit integer", ErrInvalidParams, f.name, f.v)
		}
		u[i] = v
	}
	if !common.IsHexAddress(req.Trader) {
		return [32]byte{}, fmt.Errorf("%w: trader %q is not an address", ErrInvalidParams, req.Trader)
	}
	return d.Digest(&eip712.Order{Trader: common.HexToAddress(req.Trader), Market: req.Market, Side: req.Side,
		OrderType: req.OrderType, Quantity: u[0], Price: u[1], Nonce: u[2], Expiry: u[3]}), nil
}

// Cancel signs and submits the cancellation of one of the key's resting
// orders (POST /cancel).
func (ob *Orderbook) Cancel(ctx context.Context, key *ecdsa.PrivateKey, orderID ID, p OpParams, wait bool) (*OpResult, error) {
	s, err := ob.signOp(ctx, key, p, func(trader common.Address, p OpParams) eip712.Message {
		return &eip712.Cancel{Trader: trader, OrderID: orderID, Nonce: p.Nonce, Expiry: p.Expiry}
	})
	if err != nil {
		return nil, err
	}
	req := obapi.CancelRequest{Trader: s.trader.Hex(), OrderID: hex32(orderID),
		Nonce: obapi.Uint(s.p.Nonce), Expiry: obapi.Uint(s.p.Expiry), Signature: s.sig}
	return ob.submitOp(ctx, "/cancel", req, s.digest, wait)
}

// signedOp is an operation signed by signOp.
type signedOp struct {
	trader common.Address
	p      OpParams // with defaults filled in
	digest [32]byte
	sig    string // 0x hex
}

// signOp fills in p's defaults, checks the expiry and signs the message
// built for the key's trader.
func (ob *Orderbook) signOp(ctx context.Context, key *ecdsa.PrivateKey, p OpParams, msg func(trader common.Address, p OpParams) eip712.Message) (signedOp, error) {
	p.Nonce, p.Expiry = nonce(p.Nonce), ob.expiry(p.Expiry)
	if err := ob.checkExpiry(p.Expiry); err != nil {
		return signedOp{}, err
	}
	d, err := ob.Domain(ctx)
	if err != nil {
		return signedOp{}, err
	}
	trader := ethsig.Address(key)
	digest := d.Digest(msg(trader, p))
	sig, err := ethsig.Sign(key, digest)
	if err != nil {
		return signedOp{}, err
	}
	return signedOp{trader: trader, p: p, digest: digest, sig: "0x" + hex.EncodeToString(sig)}, nil
}

// Withdraw signs and submits a withdrawal (POST /withdraw). The returned
// ID is the withdrawal id whose quorum proof a bridge pays out on.
func (ob *Orderbook) Withdraw(ctx context.Context, key *ecdsa.PrivateKey, p WithdrawParams, wait bool) (*OpResult, error) {
	if err := checkToken(p.Token); err != nil {
		return nil, fmt.Errorf("%w: token %q must be 1 to %d bytes", ErrInvalidParams, p.Token, tokenBytesMax)
	}
	if p.Amount == 0 || p.Amount > amount.Max {
		return nil, fmt.Errorf("%w: amount must be between 1 and %d base units", ErrInvalidParams, amount.Max)
	}
	if p.Recipient == (common.Address{}) {
		p.Recipient = ethsig.Address(key)
	}
	s, err := ob.signOp(ctx, key, p.OpParams, func(trader common.Address, op OpParams) eip712.Message {
		return &eip712.Withdraw{Trader: trader, Token: p.Token, Amount: p.Amount,
			Recipient: p.Recipient, Nonce: op.Nonce, Expiry: op.Expiry}
	})
	if err != nil {
		return nil, err
	}
	req := obapi.WithdrawRequest{Trader: s.trader.Hex(), Token: p.Token, Amount: obapi.Uint(p.Amount),
		Recipient: p.Recipient.Hex(), Nonce: obapi.Uint(s.p.Nonce), Expiry: obapi.Uint(s.p.Expiry), Signature: s.sig}
	return ob.submitOp(ctx, "/withdraw", req, s.digest, wait)
}

func (ob *Orderbook) submitOp(ctx context.Context, path string, req any, digest [32]byte, wait bool) (*OpResult, error) {
	raw, err := postJSON(ctx, &ob.o, ob.base, ob.base+path+ob.waitQuery(ctx, wait), req)
	if err != nil {
		return nil, err
	}
	res := &OpResult{ID: digest, Raw: raw}
	var answered string
	if wait {
		res.Result = new(obapi.OpResult)
		err = json.Unmarshal(raw, res.Result)
		answered = res.Result.ID
		if err == nil && res.Result.Status == obapi.StatusPending {
			res.Accepted = new(obapi.OpAccepted)
			err = json.Unmarshal(raw, res.Accepted)
		}
	} else {
		res.Accepted = new(obapi.OpAccepted)
		err = json.Unmarshal(raw, res.Accepted)
		answered = res.Accepted.ID
	}
	if err != nil {
		return res, fmt.Errorf("%s: malformed answer to %s: %w", ob.base, path, err)
	}
	if !sameID(res.ID, answered) {
		return res, fmt.Errorf("%w: signed %s, replica says %q", ErrIDMismatch, res.ID, answered)
	}
	return res, nil
}

// Balance reads an account's balance of a token (GET /balance), signed by
// the replica. index 0 asks for the latest applied state; N > 0 for the
// state as of applied index N. The answer is checked to be about what was
// asked; check its signature with VerifyBalanceSignature.
func (ob *Orderbook) Balance(ctx context.Context, address common.Address, token string, index uint64) (*obapi.Balance, error) {
	if err := checkToken(token); err != nil {
		return nil, fmt.Errorf("%w: token %q must be 1 to %d bytes", ErrInvalidParams, token, tokenBytesMax)
	}
	q := url.Values{"address": {address.Hex()}, "token": {token}}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	var b obapi.Balance
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/balance?"+q.Encode(), &b); err != nil {
		return nil, err
	}
	if !strings.EqualFold(b.Address, address.Hex()) || b.Token != token || (index > 0 && b.Index != index) {
		return &b, fmt.Errorf("%s answered a balance of %s %s at index %d, asked %s %s at index %d",
			ob.base, b.Address, b.Token, b.Index, address.Hex(), token, index)
	}
	return &b, nil
}

// VerifyBalanceSignature checks one replica's signed balance answer: the
// replica is replicaID of the cluster (the answer's own "replica" field
// must name it too; replicaID "" takes the answer's word for which replica
// it is, the signature then proves it), the decimal text matches the base
// units, and the BLS signature over the EIP-712 Balance digest (cluster
// app and domain) verifies with that replica's key.
func VerifyBalanceSignature(c *cluster.Cluster, replicaID string, b *obapi.Balance) error {
	if b == nil {
		return fmt.Errorf("%w: no balance", ErrProofMalformed)
	}
	i, err := answeringReplica(c, replicaID, b.Replica)
	if err != nil {
		return err
	}
	p := BalanceProof{App: c.App, Address: b.Address, Token: b.Token, Balance: b.Balance, BalanceUnits: b.BalanceUnits, Index: b.Index}
	m, err := p.Message()
	if err != nil {
		return err
	}
	return verifyReplicaSignature(c, i, b.Signature, &m)
}

// Withdrawal reads a recorded withdrawal and the replica's signature over
// it (GET /withdrawals/{id}).
func (ob *Orderbook) Withdrawal(ctx context.Context, id ID) (*obapi.Withdrawal, error) {
	var w obapi.Withdrawal
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/withdrawals/"+hex32(id), &w); err != nil {
		return nil, err
	}
	if !strings.EqualFold(w.ID, hex32(id)) {
		return &w, fmt.Errorf("%s answered withdrawal %s, asked %s", ob.base, w.ID, hex32(id))
	}
	return &w, nil
}

// VerifyWithdrawalSignature checks one replica's signed withdrawal record
// the way VerifyBalanceSignature checks a balance.
func VerifyWithdrawalSignature(c *cluster.Cluster, replicaID string, w *obapi.Withdrawal) error {
	if w == nil {
		return fmt.Errorf("%w: no withdrawal", ErrProofMalformed)
	}
	i, err := answeringReplica(c, replicaID, w.Replica)
	if err != nil {
		return err
	}
	if w.App != c.App {
		return fmt.Errorf("%w: record app %q, cluster app %q", ErrProofApp, w.App, c.App)
	}
	p := WithdrawalProof{App: w.App, ID: w.ID, Trader: w.Trader, Token: w.Token, Amount: w.Amount,
		AmountUnits: w.AmountUnits, Recipient: w.Recipient, Index: w.Index}
	m, err := p.Message()
	if err != nil {
		return err
	}
	return verifyReplicaSignature(c, i, w.Signature, &m)
}

// answeringReplica returns the index of the replica whose signed answer
// is checked: replicaID, or when it is "" the one the answer names (the
// signature then proves it); an answer naming another replica, or a
// replica not in the cluster, is refused.
func answeringReplica(c *cluster.Cluster, replicaID, answered string) (int, error) {
	if replicaID == "" {
		replicaID = answered
	}
	if answered != replicaID {
		return 0, fmt.Errorf("%w: answer says replica %q, expected %q", ErrProofSigner, answered, replicaID)
	}
	i, ok := c.ReplicaIndex(replicaID)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrProofSigner, replicaID)
	}
	return i, nil
}

// verifyReplicaSignature checks replica i's BLS signature (hex) over the
// EIP-712 digest of m in the cluster's domain.
func verifyReplicaSignature(c *cluster.Cluster, i int, sigHex string, m eip712.Message) error {
	sig, err := bls.SignatureFromHex(sigHex)
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrProofMalformed, err)
	}
	if !sig.Verify(c.ReplicaKey(i), c.Domain.Digest(m)) {
		return ErrProofSignature
	}
	return nil
}

// Orders lists open orders (GET /orders), or, when trader is not the zero
// address, that trader's orders.
func (ob *Orderbook) Orders(ctx context.Context, trader common.Address) (*obapi.Orders, error) {
	u := ob.base + "/orders"
	if trader != (common.Address{}) {
		u += "?" + url.Values{"trader": {trader.Hex()}}.Encode()
	}
	var out obapi.Orders
	if err := getJSON(ctx, &ob.o, ob.base, u, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Order reads one order by id (GET /orders/{id}).
func (ob *Orderbook) Order(ctx context.Context, id ID) (*obapi.Order, error) {
	var out obapi.Order
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/orders/"+hex32(id), &out); err != nil {
		return nil, err
	}
	if !strings.EqualFold(out.OrderID, hex32(id)) {
		return &out, fmt.Errorf("%s answered order %s, asked %s", ob.base, out.OrderID, hex32(id))
	}
	return &out, nil
}

// Op reads the outcome of any submitted operation by id (GET /ops/{id}).
func (ob *Orderbook) Op(ctx context.Context, id ID) (*obapi.OpResult, error) {
	var out obapi.OpResult
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/ops/"+hex32(id), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Trades reads trades with sequence number above after (GET /trades);
// market "" means all markets, limit 0 the replica's default page. Page
// on with after = answer.Next.
func (ob *Orderbook) Trades(ctx context.Context, market string, after uint64, limit int) (*obapi.Trades, error) {
	return ob.trades(ctx, url.Values{}, market, after, limit)
}

// trades is GET /trades with q plus the market and paging parameters.
func (ob *Orderbook) trades(ctx context.Context, q url.Values, market string, after uint64, limit int) (*obapi.Trades, error) {
	if market != "" {
		q.Set("market", market)
	}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	u := ob.base + "/trades"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var out obapi.Trades
	if err := getJSON(ctx, &ob.o, ob.base, u, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Depth reads the aggregated book of a market (GET /depth); levels 0 means
// the replica's default.
func (ob *Orderbook) Depth(ctx context.Context, market string, levels int) (*obapi.Depth, error) {
	q := url.Values{"market": {market}}
	if levels > 0 {
		q.Set("levels", strconv.Itoa(levels))
	}
	var out obapi.Depth
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/depth?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// State reads the replica's applied index and state digest (GET /state).
func (ob *Orderbook) State(ctx context.Context) (*obapi.State, error) {
	var out obapi.State
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/state", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Aggregator is a client of the aggregator (DESIGN §6). What it serves is
// checked with VerifyBalanceProof / VerifyWithdrawalProof; the fetch
// methods do not verify, so a caller holding no cluster file can still
// relay proofs.
type Aggregator struct {
	base string
	o    options
}

// NewAggregator returns a client of the aggregator at baseURL.
func NewAggregator(baseURL string, opts ...Option) (*Aggregator, error) {
	o := buildOptions(opts)
	o.component = "aggregator"
	base, err := checkBaseURL(o.scheme, baseURL)
	if err != nil {
		return nil, fmt.Errorf("aggregator URL: %w", err)
	}
	return &Aggregator{base: base, o: o}, nil
}

// BalanceProof fetches a quorum proof of an account's balance
// (GET /aggregate_balance).
func (a *Aggregator) BalanceProof(ctx context.Context, address common.Address, token string) (*BalanceProof, error) {
	q := url.Values{"address": {address.Hex()}, "token": {token}}
	var p BalanceProof
	if err := getJSON(ctx, &a.o, a.base, a.base+"/aggregate_balance?"+q.Encode(), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// WithdrawalProof fetches the quorum proof of a recorded withdrawal
// (GET /aggregate_withdrawal).
func (a *Aggregator) WithdrawalProof(ctx context.Context, id ID) (*WithdrawalProof, error) {
	var p WithdrawalProof
	if err := getJSON(ctx, &a.o, a.base, a.base+"/aggregate_withdrawal?id="+hex32(id), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// StateProof fetches the quorum proof of the replicas' state digest at
// index (GET /aggregate_state), unverified: check it with VerifyStateProof.
func (a *Aggregator) StateProof(ctx context.Context, index uint64) (*StateProof, error) {
	var p StateProof
	if err := getJSON(ctx, &a.o, a.base, a.base+"/aggregate_state?index="+strconv.FormatUint(index, 10), &p); err != nil {
		return nil, err
	}
	return &p, nil
}
