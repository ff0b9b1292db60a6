package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Refusals for funds on a replica that lags.
//
// A replica checks funds against the state it has applied, which may be
// behind what the sequencer has finalized: a trader who deposited or
// traded through another replica a moment ago would be refused for funds
// they hold (a bridge paying out a withdrawal right after the fill it
// read elsewhere, say). So a refusal for funds (403: insufficient
// balance, too many open orders) is not final at once: the replica asks
// the sequencer for its finalized head, waits until it has applied up to
// it (at most Config.LagWaitMax), and checks again. The answer is then
// final as of that head, and says so. If the replica cannot get there in
// time, it cannot tell yet: 503, naming both indexes, to retry or to ask
// another replica. If it cannot ask (no node answers, or more refusals
// than lagAsksPerSec ask at once), the refusal stands as of its own
// index, and says that.
//
// Only refusals pay for this (a head query: an HTTP request and a BLS
// check); the asks are rate-limited so that a flood of underfunded
// requests cannot turn into a flood of them.

// lagAsksPerSec bounds the finalized-head queries refusals make.
const lagAsksPerSec = 20

// staleErr is a 403 refusal for funds (see httpError.stale).
func staleErr(format string, args ...any) error {
	return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf(format, args...), stale: true}
}

// isStale reports whether err is a refusal for funds.
func isStale(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.stale
}

// settled is a refusal for funds given as final: a plain 403 that says
// which state it is true of.
func settled(err error, asOf string) error {
	return &httpError{status: http.StatusForbidden, msg: err.Error() + " (" + asOf + ")"}
}

// recheckStale settles the refusals for funds among errs (errs[i] is
// ops[i]'s check): once the replica has applied the sequencer's finalized
// head as of now, it checks those operations again; errs[i] becomes nil
// for one that passes, and every remaining refusal names the index it is
// final at, or becomes a 503 when the replica could not get there.
func (r *Replica) recheckStale(ctx context.Context, ops []*Op, errs []error) {
	stale := false
	for _, err := range errs {
		stale = stale || isStale(err)
	}
	if !stale {
		return
	}
	applied, head, asked, caught := r.catchUp(ctx)
	for i, err := range errs {
		if !isStale(err) {
			continue
		}
		switch {
		case !asked:
			errs[i] = settled(err, fmt.Sprintf("as of this replica's applied index %d", applied))
		case !caught:
			errs[i] = httpErr(http.StatusServiceUnavailable, "%v at this replica's applied index %d, but the sequencer has finalized up to %d "+
				"and this replica did not apply that within %v: it cannot tell yet; retry, or ask another replica", err, applied, head, r.cfg.LagWaitMax)
		default:
			if err := r.checkState(ops[i]); err != nil {
				if isStale(err) {
					err = settled(err, fmt.Sprintf("as of applied index %d, the sequencer's finalized head when asked", max(head, r.Applied())))
				}
				errs[i] = err
			} else {
				errs[i] = nil
			}
		}
	}
}

// catchUp asks the sequencer for its finalized head and waits, at most
// LagWaitMax, until this replica has applied it. asked is false when it
// could not ask (rate limit, LagWaitMax 0, no answer); caught says the
// replica reached head.
func (r *Replica) catchUp(ctx context.Context) (applied, head uint64, asked, caught bool) {
	applied = r.Applied()
	if r.cfg.LagWaitMax <= 0 || !r.lagAsks.Allow() {
		return applied, 0, false, false
	}
	qctx, cancel := context.WithTimeout(ctx, min(r.cfg.LagWaitMax, time.Second))
	head, err := r.seq.FinalizedHead(qctx)
	cancel()
	if err != nil {
		r.log.Debug("refusal for funds: could not read the sequencer's finalized head", "err", err)
		return applied, 0, false, false
	}
	if applied >= head {
		return applied, head, true, true
	}
	caught = r.waitIndex(ctx, head, r.cfg.LagWaitMax)
	return r.Applied(), head, true, caught
}
