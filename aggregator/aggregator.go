// Package aggregator turns the replicas' individually signed answers into
// quorum proofs (DESIGN §6): it asks every replica for the same balance at
// the same applied index (or for the same withdrawal record), checks every
// answer and signature against the cluster file, and aggregates the BLS
// signatures of the replicas that agree on one value into a single
// signature with the list of signers. A bridge, a contract or a program in
// another language checks such a proof with the replicas' public keys
// alone (docs/verification.md); it never has to trust the aggregator.
//
// The aggregator holds no state and no key. A Byzantine replica can only
// make itself a non-signer: a proof is formed only for a value that at
// least ReplicaThreshold replicas validly signed, and the threshold is a
// strict majority, so a minority of faulty replicas can neither add a
// wrong value to a proof nor get a proof for one.
package aggregator

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// Aggregator builds quorum proofs. It is safe for concurrent use.
type Aggregator struct {
	c        *cluster.Cluster
	replicas Replicas
	cfg      Config
	log      *slog.Logger
	limiter  *logLimiter
	verifier *verifier
	metrics  *Metrics
}

// New returns an aggregator for the cluster c (already checked by
// cluster.Load/Parse/New: every replica key has a valid proof of
// possession) that reaches its replicas through r.
func New(c *cluster.Cluster, r Replicas, cfg Config, log *slog.Logger) (*Aggregator, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	if c == nil || r == nil {
		return nil, errors.New("aggregator: cluster and replicas are required")
	}
	if len(c.Replicas) == 0 {
		return nil, errors.New("aggregator: the cluster file lists no replicas")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		m = NopMetrics()
	}
	return &Aggregator{c: c, replicas: r, cfg: cfg, log: log, limiter: newLogLimiter(cfg.LogEvery, len(c.Replicas)), verifier: newVerifier(c), metrics: m}, nil
}

// Cluster returns the cluster the aggregator serves.
func (a *Aggregator) Cluster() *cluster.Cluster { return a.c }

// QuorumError says why no proof could be formed, and what each replica
// answered.
type QuorumError struct {
	// NotFound: a withdrawal that no quorum of replicas knows (yet).
	NotFound bool
	Reason   string
	Replicas []ReplicaReport
}

// ReplicaReport is one replica's part in a failed attempt.
type ReplicaReport struct {
	Replica string `json:"replica"`
	Answer  string `json:"answer"`
}

func (e *QuorumError) Error() string { return e.Reason }

// pickIndex returns the highest index that at least need replicas have
// applied: the need-th largest of the indexes reported.
func pickIndex(applied []uint64, need int) (uint64, bool) {
	if need < 1 || len(applied) < need {
		return 0, false
	}
	s := slices.Clone(applied)
	slices.Sort(s)
	return s[len(s)-need], true
}

// Balance returns a quorum proof of address's balance of token at the
// highest index a quorum of replicas has applied, or a *QuorumError.
func (a *Aggregator) Balance(ctx context.Context, address common.Address, token string) (*client.BalanceProof, error) {
	n, need := len(a.c.Replicas), a.c.ReplicaThreshold()

	// Round 1: where is everyone? Settled once a quorum reported.
	states, end := gather(ctx, n, a.cfg.Timeout, a.cfg.StragglerWait,
		a.replicas.State,
		func(as []answer[uint64]) bool { return countOK(as) >= need })
	if err := ctx.Err(); err != nil {
		return nil, err // the caller left: its replicas did nothing wrong
	}
	var applied []uint64
	shares := make([]share, n)
	for i, st := range states {
		shares[i].replica = i
		if st.done && st.err == nil {
			applied = append(applied, st.val)
			shares[i].value = fmt.Sprintf("its applied index %d", st.val)
			continue
		}
		shares[i].kind, shares[i].reason = a.failure("GET /state", st.err, st.done, end)
	}
	index, ok := pickIndex(applied, need)
	if !ok {
		err := a.noQuorum(fmt.Sprintf("only %d of %d replicas reported their applied index, need %d", len(applied), n, need), shares, false)
		a.logNonSigners("balance", shares, "trader", address.Hex(), "token", token)
		return nil, err
	}

	// Round 2: everyone's signed balance at that index. Settled once a
	// quorum answered the same value (checked for real in decide).
	answers, end := gather(ctx, n, a.cfg.Timeout, a.cfg.StragglerWait,
		func(ctx context.Context, i int) (share, error) {
			b, err := a.replicas.Balance(ctx, i, address.Hex(), token, index)
			if err != nil {
				return share{}, err
			}
			return a.balanceShare(i, address, token, index, b), nil
		},
		func(as []answer[share]) bool { return sameDigestCount(as) >= need })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, an := range answers {
		shares[i] = share{replica: i}
		switch {
		case an.done && an.err == nil:
			shares[i] = an.val
		default:
			shares[i].kind, shares[i].reason = a.failure("GET /balance", an.err, an.done, end)
		}
	}

	d := decide(a.c, a.verifier, shares)
	a.logNonSigners("balance", d.shares, "trader", address.Hex(), "token", token, "index", index)
	if !d.ok {
		return nil, a.noQuorum(fmt.Sprintf("fewer than %d of %d replicas signed the same balance at index %d", need, n, index), d.shares, false)
	}
	m := eip712.Balance{App: a.c.App, Account: address, Token: token, Balance: d.shares[d.winner].units, Index: index}
	p := client.NewBalanceProof(a.c, m, d.aggregate, ids(a.c, d.signers))
	served, err := p.Message()
	if err == nil {
		err = a.verifier.checkProof(&served, p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
	}
	if err := a.selfCheck(d, err); err != nil {
		return nil, err
	}
	return p, nil
}

// balanceShare checks one replica's balance answer at the edge: it must be
// the answer to exactly what was asked, from the replica that was asked,
// with consistent amounts and a well-formed signature. The signature itself
// is checked in decide.
func (a *Aggregator) balanceShare(i int, address common.Address, token string, index uint64, b *obapi.Balance) share {
	s := share{replica: i}
	bad := func(format string, args ...any) share {
		s.kind, s.reason = kindMalformed, fmt.Sprintf(format, args...)
		return s
	}
	if b.Replica != a.c.Replicas[i].ID {
		return bad("answered as replica %q", clip(b.Replica))
	}
	if !common.IsHexAddress(b.Address) || common.HexToAddress(b.Address) != address {
		return bad("answered for address %q, asked %s", clip(b.Address), address.Hex())
	}
	if b.Token != token {
		return bad("answered for token %q, asked %q", clip(b.Token), token)
	}
	if b.Index != index {
		return bad("answered for index %d, asked %d", b.Index, index)
	}
	units, err := amount.ParseUnits(b.BalanceUnits)
	if err != nil {
		return bad("balance_units: %v", err)
	}
	if b.Balance != amount.Format(units) {
		return bad("balance %q does not match balance_units %s", clip(b.Balance), b.BalanceUnits)
	}
	sig, err := bls.SignatureFromHex(b.Signature)
	if err != nil {
		return bad("signature: %v", err)
	}
	s.digest = a.c.Domain.Digest(&eip712.Balance{App: a.c.App, Account: address, Token: token, Balance: units, Index: index})
	s.sig = sig
	s.value = fmt.Sprintf("balance %s at index %d", amount.Format(units), index)
	s.units = units
	return s
}

// Withdrawal returns a quorum proof of the withdrawal record id, or a
// *QuorumError (NotFound when no quorum of replicas knows it).
func (a *Aggregator) Withdrawal(ctx context.Context, id [32]byte) (*client.WithdrawalProof, error) {
	idHex := hex32(id)
	d, err := a.decideFindable(ctx, findable{
		what: "GET /withdrawals", notFound: "does not know this withdrawal",
		ask: func(ctx context.Context, i int) (share, error) {
			w, err := a.replicas.Withdrawal(ctx, i, idHex)
			if err != nil {
				return share{}, err
			}
			return a.withdrawalShare(i, id, w), nil
		},
		noQuorum: func(need, n int) string {
			return fmt.Sprintf("fewer than %d of %d replicas signed the same record of withdrawal %s", need, n, idHex)
		},
		noneKnow: func(notFound, n int) string {
			return fmt.Sprintf("no quorum of replicas knows withdrawal %s (%d of %d do not)", idHex, notFound, n)
		},
		kind: "withdrawal", attrs: []any{"id", idHex},
	})
	if err != nil {
		return nil, err
	}
	p := client.NewWithdrawalProof(a.c, *d.shares[d.winner].withdrawal, d.aggregate, ids(a.c, d.signers))
	served, err := p.Message()
	if err == nil {
		err = a.verifier.checkProof(&served, p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
	}
	if err := a.selfCheck(d, err); err != nil {
		return nil, err
	}
	return p, nil
}

// findable is a record replicas sign but may not have (ErrNotFound): a
// withdrawal, an attestation.
type findable struct {
	what     string // the replica route, for failure reasons
	notFound string // the share's reason when a replica does not have it
	ask      func(ctx context.Context, i int) (share, error)
	noQuorum func(need, n int) string     // why no quorum signed one record
	noneKnow func(notFound, n int) string // why, when some do not have it
	kind     string                       // what logNonSigners calls it
	attrs    []any                        // and the key/value pairs it logs
}

// decideFindable asks every replica for f's record and decides on the
// shares. The round settles once a quorum signed one digest or a quorum
// has none. Without a quorum the error is a *QuorumError: with any "not
// found" the honest answer is that no quorum knows the record (404, the
// others may be behind); otherwise replicas failed us (424).
func (a *Aggregator) decideFindable(ctx context.Context, f findable) (decision, error) {
	n, need := len(a.c.Replicas), a.c.ReplicaThreshold()
	answers, end := gather(ctx, n, a.cfg.Timeout, a.cfg.StragglerWait, f.ask,
		func(as []answer[share]) bool {
			return sameDigestCount(as) >= need || countNotFound(as) >= need
		})
	if err := ctx.Err(); err != nil {
		return decision{}, err
	}
	shares := make([]share, n)
	notFound := 0
	for i, an := range answers {
		shares[i] = share{replica: i}
		switch {
		case an.done && an.err == nil:
			shares[i] = an.val
		case an.done && errors.Is(an.err, ErrNotFound):
			notFound++
			shares[i].kind, shares[i].reason = kindNotFound, f.notFound
		default:
			shares[i].kind, shares[i].reason = a.failure(f.what, an.err, an.done, end)
		}
	}
	d := decide(a.c, a.verifier, shares)
	a.logNonSigners(f.kind, d.shares, f.attrs...)
	if !d.ok {
		reason := f.noQuorum(need, n)
		if notFound > 0 {
			reason = f.noneKnow(notFound, n)
		}
		return d, a.noQuorum(reason, d.shares, notFound > 0)
	}
	return d, nil
}

// withdrawalShare checks one replica's withdrawal record at the edge.
func (a *Aggregator) withdrawalShare(i int, id [32]byte, w *obapi.Withdrawal) share {
	s := share{replica: i}
	bad := func(format string, args ...any) share {
		s.kind, s.reason = kindMalformed, fmt.Sprintf(format, args...)
		return s
	}
	if w.Replica != a.c.Replicas[i].ID {
		return bad("answered as replica %q", clip(w.Replica))
	}
	if w.App != "" && w.App != a.c.App {
		return bad("answered for app %q, the cluster's is %q", clip(w.App), a.c.App)
	}
	gotID, err := parseHash(w.ID)
	if err != nil || gotID != id {
		return bad("answered for withdrawal %q, asked %s", clip(w.ID), hex32(id))
	}
	if !isAddress(w.Trader) {
		return bad("trader %q is not an address", clip(w.Trader))
	}
	if !isAddress(w.Recipient) {
		return bad("recipient %q is not an address", clip(w.Recipient))
	}
	if err := checkToken(w.Token); err != nil {
		return bad("token: %v", err)
	}
	units, err := amount.ParseUnits(w.AmountUnits)
	if err != nil {
		return bad("amount_units: %v", err)
	}
	if w.Amount != amount.Format(units) {
		return bad("amount %q does not match amount_units %s", clip(w.Amount), w.AmountUnits)
	}
	sig, err := bls.SignatureFromHex(w.Signature)
	if err != nil {
		return bad("signature: %v", err)
	}
	rec := &eip712.Withdrawal{
		App: a.c.App, ID: id, Trader: common.HexToAddress(w.Trader), Token: w.Token,
		Amount: units, Recipient: common.HexToAddress(w.Recipient), Index: w.Index,
	}
	s.digest = a.c.Domain.Digest(rec)
	s.sig = sig
	s.value = fmt.Sprintf("withdrawal of %s %s by %s to %s at index %d",
		amount.Format(units), w.Token, rec.Trader.Hex(), rec.Recipient.Hex(), w.Index)
	s.withdrawal = rec
	return s
}

// State returns a quorum proof of the replicas' state digest at index (an
// attestation index, docs/verification.md), or a *QuorumError (NotFound
// when replicas have no attestation there).
func (a *Aggregator) State(ctx context.Context, index uint64) (*client.StateProof, error) {
	d, err := a.decideFindable(ctx, findable{
		what: "GET /attestation", notFound: "has no attestation at this index",
		ask: func(ctx context.Context, i int) (share, error) {
			at, err := a.replicas.Attestation(ctx, i, index)
			if err != nil {
				return share{}, err
			}
			return a.attestationShare(i, index, at), nil
		},
		noQuorum: func(need, n int) string {
			return fmt.Sprintf("fewer than %d of %d replicas attested the same state digest at index %d", need, n, index)
		},
		noneKnow: func(notFound, n int) string {
			return fmt.Sprintf("no quorum of replicas has an attestation at index %d (%d of %d have none: not applied yet, not an attestation index, or older than they keep)", index, notFound, n)
		},
		kind: "state", attrs: []any{"index", index},
	})
	if err != nil {
		return nil, err
	}
	m := eip712.State{App: a.c.App, Index: index, StateDigest: d.shares[d.winner].state}
	p := client.NewStateProof(a.c, m, d.aggregate, ids(a.c, d.signers))
	served, err := p.Message()
	if err == nil {
		err = a.verifier.checkProof(&served, p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
	}
	if err := a.selfCheck(d, err); err != nil {
		return nil, err
	}
	return p, nil
}

// attestationShare checks one replica's attestation at the edge.
func (a *Aggregator) attestationShare(i int, index uint64, at *obapi.Attestation) share {
	s := share{replica: i}
	bad := func(format string, args ...any) share {
		s.kind, s.reason = kindMalformed, fmt.Sprintf(format, args...)
		return s
	}
	if at.Replica != a.c.Replicas[i].ID {
		return bad("answered as replica %q", clip(at.Replica))
	}
	if at.App != a.c.App {
		return bad("answered for app %q, the cluster's is %q", clip(at.App), a.c.App)
	}
	if at.Index != index {
		return bad("answered for index %d, asked %d", at.Index, index)
	}
	d, err := parseHash(at.StateDigest)
	if err != nil {
		return bad("state_digest: %v", err)
	}
	sig, err := bls.SignatureFromHex(at.Signature)
	if err != nil {
		return bad("signature: %v", err)
	}
	s.digest = a.c.Domain.Digest(&eip712.State{App: a.c.App, Index: index, StateDigest: d})
	s.sig = sig
	s.value = fmt.Sprintf("state digest %s at index %d", hex32(d), index)
	s.state = d
	return s
}

// selfCheck takes the outcome of verifying the assembled proof as a bridge
// would (verifier.checkProof, reading the proof back through the SDK's
// Message) before it is handed out: a bug in grouping, aggregation or
// assembly must never produce a proof that fails elsewhere, or one that
// passes for the wrong signers.
func (a *Aggregator) selfCheck(d decision, verifyErr error) error {
	if verifyErr != nil {
		a.log.Error("assembled proof failed its own verification", "digest", hex32(d.digest), "signers", ids(a.c, d.signers), "err", verifyErr)
		return fmt.Errorf("aggregator: internal error: proof failed verification: %w", verifyErr)
	}
	return nil
}

// failure turns a failed question into a reason.
func (a *Aggregator) failure(what string, err error, done bool, end roundEnd) (kind, reason string) {
	if !done {
		if end == endSettled {
			return kindUnreachable, fmt.Sprintf("%s: no answer before the quorum settled (+%s)", what, a.cfg.StragglerWait)
		}
		return kindUnreachable, fmt.Sprintf("%s: no answer within %s", what, a.cfg.Timeout)
	}
	var re *ReplicaError
	if errors.As(err, &re) {
		return kindHTTPError, fmt.Sprintf("%s: %v", what, re)
	}
	if errors.Is(err, ErrNotFound) {
		return kindNotFound, fmt.Sprintf("%s: %v", what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kindUnreachable, fmt.Sprintf("%s: no answer within %s", what, a.cfg.Timeout)
	}
	return kindUnreachable, fmt.Sprintf("%s: %s", what, clip(err.Error()))
}

func (a *Aggregator) noQuorum(reason string, shares []share, notFound bool) *QuorumError {
	e := &QuorumError{NotFound: notFound, Reason: reason}
	for i, s := range shares {
		what := s.reason
		switch {
		case what != "":
		case s.signed():
			what = "signed " + s.value
		case s.value != "": // answered the first round; no signature was asked for
			what = "reported " + s.value + "; not asked to sign: too few replicas reported theirs"
		default:
			what = "no answer"
		}
		e.Replicas = append(e.Replicas, ReplicaReport{Replica: a.c.Replicas[i].ID, Answer: what})
	}
	return e
}

// logNonSigners logs every replica left out of a proof attempt, with why,
// at most once per LogEvery per replica and kind of problem.
func (a *Aggregator) logNonSigners(what string, shares []share, attrs ...any) {
	now := time.Now()
	for i, s := range shares {
		if s.kind == "" {
			continue
		}
		a.metrics.NonSigners.WithLabelValues(a.c.Replicas[i].ID, s.kind).Inc()
		suppressed, ok := a.limiter.allow(i, s.kind, now)
		if !ok {
			continue
		}
		args := append([]any{"replica", a.c.Replicas[i].ID, "problem", s.kind, "reason", s.reason}, attrs...)
		if suppressed > 0 {
			args = append(args, "similar_suppressed", suppressed)
		}
		level := slog.LevelWarn
		if s.kind == kindDisagrees || s.kind == kindBadSig {
			// A validly signed wrong value, or a forged signature: this
			// replica is faulty or Byzantine, not merely slow.
			level = slog.LevelError
		}
		a.log.Log(context.Background(), level, "replica left out of "+what+" proof", args...)
	}
}

// logLimiter remembers, per replica, the last kind of problem logged and
// when.
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  []struct {
		kind       string
		at         time.Time
		suppressed int
	}
}

func newLogLimiter(every time.Duration, n int) *logLimiter {
	l := &logLimiter{every: every}
	l.last = make([]struct {
		kind       string
		at         time.Time
		suppressed int
	}, n)
	return l
}

// allow reports whether to log kind for replica i now, and how many lines
// were suppressed since the last one.
func (l *logLimiter) allow(i int, kind string, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &l.last[i]
	if e.kind == kind && now.Sub(e.at) < l.every {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.kind, e.at, e.suppressed = kind, now, 0
	return n, true
}

func countOK[T any](as []answer[T]) int {
	n := 0
	for _, a := range as {
		if a.done && a.err == nil {
			n++
		}
	}
	return n
}

func countNotFound[T any](as []answer[T]) int {
	n := 0
	for _, a := range as {
		if a.done && errors.Is(a.err, ErrNotFound) {
			n++
		}
	}
	return n
}

// sameDigestCount is the size of the largest group of signed answers with
// one digest (signatures not checked yet: this only decides when to stop
// waiting).
func sameDigestCount(as []answer[share]) int {
	best := 0
	for i, a := range as {
		if !a.done || a.err != nil || !a.val.signed() {
			continue
		}
		n := 0
		for _, b := range as[i:] {
			if b.done && b.err == nil && b.val.signed() && b.val.digest == a.val.digest {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func hex32(b [32]byte) string { return "0x" + hex.EncodeToString(b[:]) }

// parseHash reads a 0x-prefixed 32-byte hex value.
func parseHash(s string) ([32]byte, error) {
	var out [32]byte
	if len(s) != 66 || !strings.HasPrefix(s, "0x") {
		return out, errors.New("must be 0x followed by 64 hex digits")
	}
	if _, err := hex.Decode(out[:], []byte(s[2:])); err != nil {
		return out, errors.New("must be 0x followed by 64 hex digits")
	}
	return out, nil
}

// isAddress accepts a 0x-prefixed 20-byte hex address in any letter case.
func isAddress(s string) bool {
	return len(s) == 42 && strings.HasPrefix(s, "0x") && common.IsHexAddress(s)
}

// tokenBytesMax bounds a token name: the client SDK's verifier refuses
// proofs of longer ones, so the aggregator refuses to build them.
const tokenBytesMax = 32

// checkToken accepts what a replica can hold a balance of (the replica's
// own rule, obapi.CheckTokenName, so a name the replicas would refuse with
// 400 is refused here with 400 too), of at most tokenBytesMax bytes.
func checkToken(t string) error {
	if err := obapi.CheckTokenName(t); err != nil {
		return err
	}
	if len(t) > tokenBytesMax {
		return fmt.Errorf("longer than %d bytes", tokenBytesMax)
	}
	return nil
}

// Open loads the cluster file at path (cluster.Load refuses any key
// without a valid proof of possession: summing keys is only safe for keys
// whose owners proved they hold them) and returns an aggregator that asks
// the replicas it lists over HTTP.
func Open(path string, cfg Config, log *slog.Logger) (*Aggregator, error) {
	c, err := cluster.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	return New(c, NewHTTPReplicas(c, nil, cfg.AnswerBytesMax), cfg, log)
}
