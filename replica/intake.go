package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/amount"
)

// intake holds what the replica accepted and has not seen applied yet.
type intake struct {
	mu sync.Mutex
	// pending: accepted, not applied. Invariant: every entry of queue is
	// in pending; nonces indexes pending by (signer, nonce).
	pending map[[32]byte]*pendingOp
	nonces  map[nonceKey][32]byte
	// queue waits for the next batch.
	queue  []*pendingOp
	signal chan struct{} // one-slot wake-up for the batch loop
	max    int
	// reused counts verified answers (Metrics.SigsReused).
	reused uint64
}

// pendingOp is an accepted operation on its way.
type pendingOp struct {
	op       *Op
	wire     []byte
	accepted time.Time
	// sentAt is when its latest batch was handed to the sequencer (zero:
	// not yet).
	sentAt time.Time
	// sent receives the result of the first send (buffered 1; nil for
	// operations restored after a restart, which nobody waits for). The
	// sender clears it; sentResult keeps the channel for the submitter.
	sent       chan error
	sentResult chan error
	// verified is set when the intake checks passed op.Verify (false for
	// operations restored from the outbox, which were not checked again).
	verified bool
	// resending is set when the resend pass queued it again.
	resending bool
}

func (in *intake) init(max int) {
	in.pending = map[[32]byte]*pendingOp{}
	in.nonces = map[nonceKey][32]byte{}
	in.signal = make(chan struct{}, 1)
	in.max = max
}

func (in *intake) wake() {
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

// add reserves an operation's id and nonce; errors are HTTP-ready.
func (in *intake) add(p *pendingOp) error {
	return in.addAll([]*pendingOp{p})[0]
}

// addAll adds operations in order under one lock, so the batch loop sees
// them together (they leave in one batch unless it is full); errs[i] is
// add's error for ps[i].
func (in *intake) addAll(ps []*pendingOp) (errs []error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	errs = make([]error, len(ps))
	for i, p := range ps {
		errs[i] = in.addLocked(p)
	}
	in.wake()
	return errs
}

func (in *intake) addLocked(p *pendingOp) error {
	if _, dup := in.pending[p.op.ID]; dup {
		return httpErr(http.StatusConflict, "operation %s is already pending", p.op.IDHex())
	}
	if p.op.HasNonce() {
		k := nonceKey{p.op.Signer, p.op.Nonce}
		if other, dup := in.nonces[k]; dup {
			return httpErr(http.StatusConflict, "nonce %d of %s is already used by pending operation %s", p.op.Nonce, p.op.Signer.Hex(), hexID(other))
		}
		in.nonces[k] = p.op.ID
	}
	if len(in.pending) >= in.max {
		if p.op.HasNonce() {
			delete(in.nonces, nonceKey{p.op.Signer, p.op.Nonce})
		}
		return httpErr(http.StatusTooManyRequests, "too many pending operations (%d); retry shortly", in.max)
	}
	in.pending[p.op.ID] = p
	in.queue = append(in.queue, p)
	return nil
}

// restore re-queues an outbox entry after a restart, to be resent after
// ResendAfter unless seen applied first.
func (in *intake) restore(op *Op, wire []byte, accepted, now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, dup := in.pending[op.ID]; dup {
		return
	}
	p := &pendingOp{op: op, wire: wire, accepted: accepted, sentAt: now}
	in.pending[op.ID] = p
	if op.HasNonce() {
		in.nonces[nonceKey{op.Signer, op.Nonce}] = op.ID
	}
}

// remove forgets an operation (applied, or given up).
func (in *intake) remove(id [32]byte) *pendingOp {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.removeLocked(id)
}

func (in *intake) removeLocked(id [32]byte) *pendingOp {
	p, ok := in.pending[id]
	if !ok {
		return nil
	}
	delete(in.pending, id)
	if p.op.HasNonce() {
		k := nonceKey{p.op.Signer, p.op.Nonce}
		if in.nonces[k] == id {
			delete(in.nonces, k)
		}
	}
	return p
}

func (in *intake) applied(id [32]byte) { in.remove(id) }

// forget removes p if no later send of it is under way: a refused first
// send is only final if the resend pass did not pick the operation up
// meanwhile (that send may be taken).
func (in *intake) forget(p *pendingOp) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending[p.op.ID] != p || p.resending {
		return false
	}
	in.removeLocked(p.op.ID)
	return true
}

// verified reports whether op is exactly an operation this replica
// verified at intake and still holds: same id (the signed digest), same
// signer, same signature bytes. op.Verify depends on nothing else, so its
// result is known to be nil. Safe for concurrent use (the apply path's
// verification workers call it).
func (in *intake) verified(op *Op) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	p, ok := in.pending[op.ID]
	if !ok || !p.verified || p.op.Signer != op.Signer || !bytes.Equal(p.op.Sig, op.Sig) {
		return false
	}
	in.reused++
	return true
}

func (in *intake) isPending(id [32]byte) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.pending[id]
	return ok
}

func (in *intake) get(id [32]byte) (*Op, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	p, ok := in.pending[id]
	if !ok {
		return nil, false
	}
	return p.op, true
}

// byNonce returns the pending operation named by (signer, nonce).
func (in *intake) byNonce(k nonceKey) (*Op, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	id, ok := in.nonces[k]
	if !ok {
		return nil, false
	}
	p, ok := in.pending[id]
	if !ok {
		return nil, false
	}
	return p.op, true
}

func (in *intake) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.pending)
}

// take removes from the head of the queue the operations of the next
// batch: at most opsMax, and no more than fit in bytesMax of batch body.
// Operations removed meanwhile (applied) are skipped.
func (in *intake) take(opsMax, bytesMax int) []*pendingOp {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*pendingOp
	size, k := 2, 0 // "[" and "]"
	for ; k < len(in.queue) && len(out) < opsMax; k++ {
		p := in.queue[k]
		if in.pending[p.op.ID] != p {
			continue
		}
		if len(out) > 0 && size+len(p.wire)+1 > bytesMax {
			break
		}
		size += len(p.wire) + 1
		out = append(out, p)
	}
	// Shift rather than reslice, so the queue's array does not keep the
	// taken operations alive.
	n := copy(in.queue, in.queue[k:])
	clear(in.queue[n:])
	in.queue = in.queue[:n]
	return out
}

// queued is how many operations wait for a batch.
func (in *intake) queued() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.queue)
}

// httpError is an error with its HTTP status.
type httpError struct {
	status int
	msg    string
	// stale: a refusal for funds, true of the state this replica has
	// applied, which a newer finalized state may reverse (lag.go).
	stale bool
}

func (e *httpError) Error() string { return e.msg }

func httpErr(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// check runs the stateful intake checks in the order DESIGN lists them:
// signature (401), expiry against the wall clock (400), replay (409), funds
// (403). Decoding (400) happened before. Nothing changes on failure.
func (r *Replica) check(op *Op) error {
	if err := op.Verify(); err != nil {
		if op.Kind != OpLegacyOrder {
			// The usual cause: signed under another domain (a wallet on
			// another chain), which recovers to some other address.
			return httpErr(http.StatusUnauthorized, "%v (this replica checks EIP-712 signatures under the domain "+
				"{name: \"seqbook\", version: \"1\", chainId: %d}, served at GET /eip712: a signature for another chain id "+
				"or domain recovers to another address)", err, r.cfg.Domain.EIP712.ChainID)
		}
		return httpErr(http.StatusUnauthorized, "%v", err)
	}
	return r.checkState(op)
}

// checkState is check after the signature: expiry (400), replay (409),
// funds (403, marked stale: lag.go).
func (r *Replica) checkState(op *Op) error {
	if op.HasNonce() {
		nowSec := uint64(r.cfg.Now().Unix())
		if op.Expiry < nowSec {
			return httpErr(http.StatusBadRequest, "expiry: expired: %d is before now (%d)", op.Expiry, nowSec)
		}
		if op.Expiry-nowSec > ExpiryAheadMaxSec {
			return httpErr(http.StatusBadRequest, "expiry: %d is more than %d s after now (%d)", op.Expiry, ExpiryAheadMaxSec, nowSec)
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	l := r.ledger
	if op.HasNonce() {
		if l.NonceUsed(op.Signer, op.Nonce) {
			return httpErr(http.StatusConflict, "nonce %d of %s is already used", op.Nonce, op.Signer.Hex())
		}
	} else if l.LegacyUsed(op.ID) {
		return httpErr(http.StatusConflict, "this legacy order (%s) was already placed; a legacy signature is accepted once", op.IDHex())
	}
	if rec, ok := l.record(op.ID); ok && !rec.Status.rejected() {
		return httpErr(http.StatusConflict, "operation %s was already applied", op.IDHex())
	}
	switch op.Kind {
	case OpOrder, OpLegacyOrder:
		tok, need, err := op.reservation()
		if err != nil {
			return httpErr(http.StatusBadRequest, "%v", err)
		}
		if avail := l.eng.Balance(accountHex(op.Signer), tok).Available; avail < need {
			return staleErr("insufficient balance: %s %s needed, %s available", amount.Format(need), tok, amount.Format(avail))
		}
		if op.OrderType.Rests() && len(l.eng.AccountOrders(accountHex(op.Signer))) >= l.cfg.Matcher.OpenOrdersPerAccountMax {
			return staleErr("too many open orders (%d)", l.cfg.Matcher.OpenOrdersPerAccountMax)
		}
	case OpWithdraw:
		if avail := l.eng.Balance(accountHex(op.Signer), op.Token).Available; avail < op.Amount {
			return staleErr("insufficient balance: %s %s requested, %s available", amount.Format(op.Amount), op.Token, amount.Format(avail))
		}
	case OpCancel:
		// An order this replica does not know may be pending at another
		// replica, so only what is known for sure is refused here.
		if info, open := l.eng.Order(hexID(op.CancelID)); open && info.Account != op.Signer.Hex() {
			return httpErr(http.StatusForbidden, "order %s belongs to another trader", hexID(op.CancelID))
		}
		if rec, ok := l.record(op.CancelID); ok && rec.Kind.IsOrder() && rec.Status.closed() {
			return httpErr(http.StatusConflict, "order %s is already %s", hexID(op.CancelID), rec.Status)
		}
	}
	return nil
}

// errPending answers an operation whose batch left (or is about to leave)
// without a node confirming it: the outcome is unknown, so the replica
// keeps the operation in its outbox and resends it until it is applied or
// expires. The client must not re-sign it (docs/api.md, "Retrying").
var errPending = errors.New("pending")

// submit checks an operation, queues it for the next batch and waits until
// a sequencer node took that batch, so an "accepted" answer means the
// operation is in the sequencer's hands (and in this replica's outbox).
// It returns errPending when that is not known in time: the operation
// stays queued and will be sent. It refuses with 503 only when no node
// took the batch for sure, and then forgets the operation, so that
// nothing of it is applied.
func (r *Replica) submit(ctx context.Context, op *Op) error {
	if err := r.check(op); err != nil {
		if !isStale(err) {
			return err
		}
		errs := []error{err}
		r.recheckStale(ctx, []*Op{op}, errs)
		if errs[0] != nil {
			return errs[0]
		}
	}
	p, err := r.enqueue(op)
	if err != nil {
		return err
	}
	return r.awaitSent(ctx, p)
}

// enqueue queues an operation that passed check for the next batch.
func (r *Replica) enqueue(op *Op) (*pendingOp, error) {
	p := r.newPending(op)
	if err := r.in.add(p); err != nil {
		return nil, err
	}
	return p, nil
}

// newPending wraps an operation that passed check for the intake.
func (r *Replica) newPending(op *Op) *pendingOp {
	sent := make(chan error, 1)
	// check verified the signature: the apply path may rely on that.
	return &pendingOp{op: op, wire: op.Wire(), accepted: r.cfg.Now(), sent: sent, sentResult: sent, verified: true}
}

// awaitSent waits until the batch carrying an enqueued operation was handed
// to a sequencer node. It returns errPending when that is not known in
// time, and 503 (dropping the operation) only when no node took it.
func (r *Replica) awaitSent(ctx context.Context, p *pendingOp) error {
	op := p.op
	select {
	case err := <-p.sentResult:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrBatchRefused) && r.in.forget(p):
			_ = r.store.DeleteOutbox([][32]byte{op.ID})
			return httpErr(http.StatusServiceUnavailable, "not accepted, nothing will be applied: %v; the same signed request may be sent again", err)
		}
		return errPending
	case <-ctx.Done():
		// The outcome is not known yet; the operation stays queued and
		// will be sent.
		return errPending
	}
}

// batchLoop sends queued operations in batches. A batch leaves when it
// holds BatchOpsMax operations (or BatchBytesMax of body), or when its
// time is up: the gap since the previous batch left. The gap follows the
// sequencer: it is the recent answer time of a batch send, kept within
// [BatchInterval, BatchIntervalMax]. So at low load an operation that
// finds the last batch long gone leaves at once (no added latency), and
// under load the replica sends about one batch per answer time, each
// carrying everything that gathered meanwhile: the busier the sequencer,
// the larger and fewer the batches (each costs the sequencer and every
// replica a fixed amount of work whatever its size).
func (r *Replica) batchLoop(ctx context.Context) {
	sem := make(chan struct{}, r.cfg.SendsInFlightMax)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var lastSent time.Time
	for {
		n := r.in.queued()
		due := lastSent.Add(r.batchGap())
		now := time.Now()
		if n > 0 && (n >= r.cfg.BatchOpsMax || !now.Before(due)) {
			// A free send slot first: while every slot waits for the
			// sequencer, the queue keeps growing into the next batch.
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			ps := r.in.take(r.cfg.BatchOpsMax, BatchBytesMax)
			if len(ps) == 0 {
				<-sem
				continue // all were applied meanwhile (resent operations)
			}
			lastSent = time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r.sendBatch(ctx, ps)
			}()
			continue
		}
		var wake <-chan time.Time
		if n > 0 {
			timer.Reset(due.Sub(now))
			wake = timer.C
		}
		select {
		case <-r.in.signal: // more operations: maybe the batch is full
		case <-wake:
		case <-ctx.Done():
			return
		}
		if wake != nil && !timer.Stop() {
			select { // drain a fire that raced with the signal
			case <-timer.C:
			default:
			}
		}
	}
}

// batchGap is the time between two batches under load: the smoothed
// answer time of batch sends within [BatchInterval, BatchIntervalMax].
func (r *Replica) batchGap() time.Duration {
	rtt := time.Duration(r.sendRTT.Load())
	return min(max(rtt, r.cfg.BatchInterval), r.cfg.BatchIntervalMax)
}

// noteSendTime folds one batch send's answer time into sendRTT (an
// exponential average weighing the newest answer 1/4).
func (r *Replica) noteSendTime(d time.Duration) {
	for {
		old := r.sendRTT.Load()
		next := old + (int64(d)-old)/4
		if old == 0 {
			next = int64(d)
		}
		if r.sendRTT.CompareAndSwap(old, next) {
			return
		}
	}
}

// sendBatch records the operations in the outbox and sends them as one
// batch, and reports the result to each.
func (r *Replica) sendBatch(ctx context.Context, ps []*pendingOp) {
	wires := make([][]byte, len(ps))
	entries := make([]OutboxEntry, 0, len(ps))
	r.in.mu.Lock()
	firstSend := make([]bool, len(ps))
	for i, p := range ps {
		firstSend[i] = p.sent != nil
	}
	r.in.mu.Unlock()
	for i, p := range ps {
		wires[i] = p.wire
		if firstSend[i] {
			entries = append(entries, OutboxEntry{ID: p.op.ID, Wire: p.wire, Expiry: p.op.Expiry, AcceptedMs: uint64(p.accepted.UnixMilli())})
		}
	}
	// The outbox write runs beside the send, not before it: the store
	// commits it together with whatever else is being written (the apply
	// loop's commit, other batches' entries), and nobody is told
	// "accepted" before both are done. A crash in between loses nothing
	// anyone was promised; an entry written after its operation applied
	// is dropped at the next start (New).
	var putErr error
	var putDone chan struct{}
	if len(entries) > 0 {
		putDone = make(chan struct{})
		go func() { defer close(putDone); putErr = r.store.PutOutbox(entries) }()
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	start := time.Now()
	err := r.seq.Send(sctx, EncodeBatch(wires))
	cancel()
	if err == nil {
		r.noteSendTime(time.Since(start))
	}
	if putDone != nil {
		<-putDone
		if err == nil && putErr != nil {
			err = fmt.Errorf("recording the batch in the outbox: %w", putErr)
		}
	}
	now := r.cfg.Now()
	r.mu.Lock()
	if err != nil {
		r.metrics.SendFailures++
	} else {
		r.metrics.BatchesSent++
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("sending a batch", "ops", len(ps), "err", err)
	}
	r.in.mu.Lock()
	for _, p := range ps {
		// Sent or not, the resend pass sends it again after ResendAfter
		// unless it is applied first (a failed send may have been taken,
		// and a refused one is resent unless its submitter forgets it).
		p.sentAt = now
		if p.sent != nil {
			p.sent <- err
			p.sent = nil
		}
	}
	r.in.mu.Unlock()
}

// resendLoop sends again operations that stay unapplied past ResendAfter
// (the node that took them may have crashed before the leader sequenced
// them), and gives up on those that can no longer apply.
func (r *Replica) resendLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ResendAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		now := r.cfg.Now()
		nowSec := uint64(now.Unix())
		var drop [][32]byte
		resent := 0
		r.in.mu.Lock()
		for id, p := range r.in.pending {
			if p.sentAt.IsZero() || now.Sub(p.sentAt) < r.cfg.ResendAfter {
				continue
			}
			// Past its expiry (with a minute of slack for the leader's
			// clock) an operation can never apply; legacy orders have no
			// expiry and get LegacyPendingMax.
			if (p.op.HasNonce() && nowSec > p.op.Expiry+60) || (!p.op.HasNonce() && now.Sub(p.accepted) > r.cfg.LegacyPendingMax) {
				r.in.removeLocked(id)
				drop = append(drop, id)
				continue
			}
			p.sentAt = time.Time{}
			p.resending = true
			r.in.queue = append(r.in.queue, p)
			resent++
		}
		if len(r.in.queue) > 0 {
			r.in.wake()
		}
		r.in.mu.Unlock()
		if resent > 0 {
			r.mu.Lock()
			r.metrics.Resent += uint64(resent)
			r.mu.Unlock()
		}
		if len(drop) > 0 {
			r.log.Warn("gave up on operations that can no longer apply", "count", len(drop))
			if err := r.store.DeleteOutbox(drop); err != nil {
				r.log.Error("deleting outbox entries", "err", err)
			}
		}
	}
}
