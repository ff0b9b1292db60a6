package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
)

// The trading API of DESIGN §8 (docs/api.md): batch placement, cancel-all,
// names before sequencing, history and reference data. Every read here is
// served from read models or the matcher under the read lock; nothing here
// changes the replicated state except through the sequencer.

// tradingRoutes adds the §8 routes.
func (r *Replica) tradingRoutes(g *gin.Engine) {
	g.POST("/orders", r.postOrders)
	g.POST("/cancel_all", r.postOp(DecodeCancelAllRequest))
	g.GET("/orders/by-nonce", r.getOrderByNonce)
	g.GET("/balances", r.getBalances)
	g.GET("/markets", r.getMarkets)
}

// DecodeOrdersBatch decodes a POST /orders body into one entry per order:
// the operation, or the error that refuses that order alone. An error for
// the whole body (not a JSON object with "orders", too many orders) comes
// back as err.
func DecodeOrdersBatch(d *Domain, body []byte) (ops []*Op, errs []error, err error) {
	var req obapi.OrdersBatchRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, nil, err
	}
	switch n := len(req.Orders); {
	case req.Orders == nil:
		return nil, nil, fieldErr("orders", errMissing)
	case n == 0:
		return nil, nil, fieldErr("orders", errors.New("empty: expected 1 to 100 orders"))
	case n > obapi.OrdersBatchMax:
		return nil, nil, fieldErr("orders", fmt.Errorf("%d orders, at most %d per request", n, obapi.OrdersBatchMax))
	}
	ops = make([]*Op, len(req.Orders))
	errs = make([]error, len(req.Orders))
	for i, raw := range req.Orders {
		op, err := DecodeOrderRequest(d, raw)
		if err != nil {
			errs[i] = fmt.Errorf("orders[%d]: %w", i, err)
			continue
		}
		ops[i] = op
	}
	return ops, errs, nil
}

// postOrders places up to OrdersBatchMax orders in one request. Each order
// is decoded and checked on its own (a bad one is refused alone, with the
// reason single placement would give); the accepted ones are queued
// together, in request order, so they normally travel in one sequencer
// batch. Signatures are checked in parallel.
func (r *Replica) postOrders(c *gin.Context) {
	wait, d, body, ok := r.readSubmission(c)
	if !ok {
		return
	}
	ops, errs, err := DecodeOrdersBatch(r.cfg.Domain, body)
	if err != nil {
		failErr(c, err)
		return
	}
	parallel(len(ops), 0, func(i int) {
		if ops[i] != nil {
			errs[i] = r.check(ops[i])
		}
	})
	r.recheckStale(c.Request.Context(), ops, errs)
	for i, op := range ops {
		if op != nil && errs[i] != nil {
			errs[i] = fmt.Errorf("orders[%d]: %w", i, errs[i])
		}
	}
	// Waiters first, so no outcome is missed; then every order into the
	// intake at once, so they leave in one batch.
	waiters := make([]chan OpOutcome, len(ops))
	pend := make([]*pendingOp, len(ops))
	var queued []*pendingOp
	for i, op := range ops {
		if errs[i] != nil {
			continue
		}
		if wait {
			waiters[i] = r.addWaiter(op.ID)
			defer r.dropWaiter(op.ID, waiters[i])
		}
		pend[i] = r.newPending(op)
		queued = append(queued, pend[i])
	}
	addErrs := r.in.addAll(queued)
	for i, k := 0, 0; i < len(pend); i++ {
		if pend[i] == nil {
			continue
		}
		if addErrs[k] != nil {
			errs[i], pend[i] = fmt.Errorf("orders[%d]: %w", i, addErrs[k]), nil
		}
		k++
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), r.cfg.SendTimeout+time.Second)
	defer cancel()
	unknown := make([]bool, len(ops)) // outcome unknown yet: "pending"
	for i, p := range pend {
		if p != nil {
			if err := r.awaitSent(ctx, p); errors.Is(err, errPending) {
				unknown[i] = true
			} else if err != nil {
				errs[i] = fmt.Errorf("orders[%d]: %w", i, err)
			}
		}
	}
	results := make([]obapi.OrderResult, len(ops))
	for i, op := range ops {
		if errs[i] != nil {
			results[i] = errorResult(errs[i])
		} else if unknown[i] {
			results[i] = obapi.OrderResult{OrderID: op.IDHex(), Status: obapi.StatusPending, Message: pendingMessage(op)}
		} else {
			results[i] = obapi.OrderResult{OrderID: op.IDHex(), Status: obapi.StatusAccepted}
		}
	}
	if wait {
		r.awaitOrders(c.Request.Context(), d, ops, errs, waiters, results)
	}
	c.JSON(http.StatusOK, obapi.OrdersBatchResult{Results: results})
}

// awaitOrders waits, until d has passed, for the outcome of every accepted
// order of a batch and writes each applied order into its result.
func (r *Replica) awaitOrders(ctx context.Context, d time.Duration, ops []*Op, errs []error, waiters []chan OpOutcome, results []obapi.OrderResult) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	expired := false
	for i, op := range ops {
		if errs[i] != nil {
			continue
		}
		got := false
		if !expired {
			select {
			case <-waiters[i]:
				got = true
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				return
			}
		}
		if !got {
			// Past the deadline: take only what has already arrived.
			select {
			case <-waiters[i]:
				got = true
			default:
			}
		}
		if !got {
			// Not applied in time: its outcome is not known yet.
			results[i] = obapi.OrderResult{OrderID: op.IDHex(), Status: obapi.StatusPending, Message: pendingMessage(op)}
			continue
		}
		r.mu.RLock()
		rec, ok := r.ledger.record(op.ID)
		var o obapi.Order
		if ok {
			o = r.orderJSON(rec)
		}
		r.mu.RUnlock()
		if ok {
			results[i].Status = o.Status
			results[i].Order = &o
		}
	}
}

// errorResult is a refused order's entry: its message and the HTTP status
// a single POST /order would have answered.
func errorResult(err error) obapi.OrderResult {
	code := http.StatusBadRequest
	var he *httpError
	if errors.As(err, &he) {
		code = he.status
	}
	return obapi.OrderResult{Error: err.Error(), Code: code}
}

// getOrderByNonce answers GET /orders/by-nonce?trader=&nonce= like GET
// /orders/{id}: an applied order from its record, or a pending one this
// replica accepted.
func (r *Replica) getOrderByNonce(c *gin.Context) {
	trader, err := parseAddress("trader", c.Query("trader"))
	if err != nil {
		failErr(c, err)
		return
	}
	nonce, err := parseUint64("nonce", obapi.Number(c.Query("nonce")))
	if err != nil {
		failErr(c, err)
		return
	}
	k := nonceKey{trader, nonce}
	r.mu.RLock()
	id, found := r.ledger.orders.byNonce[k]
	var o obapi.Order
	if found {
		var rec *record
		if rec, found = r.ledger.record(id); found {
			o = r.orderJSON(rec)
		}
	}
	r.mu.RUnlock()
	if found {
		c.JSON(http.StatusOK, o)
		return
	}
	if op, pending := r.in.byNonce(k); pending && op.Kind.IsOrder() {
		c.JSON(http.StatusOK, pendingOrderJSON(op))
		return
	}
	fail(c, http.StatusNotFound, "no order of %s with nonce %d is known to this replica (never seen, not an order, or its record was evicted)", trader.Hex(), nonce)
}

// historyFilters maps GET /orders?status= to the record statuses it keeps.
var historyFilters = map[string]historyFilter{
	obapi.HistoryOpen:      func(s opStatus) bool { return s == stOpen || s == stPartiallyFilled },
	obapi.HistoryFilled:    func(s opStatus) bool { return s == stFilled },
	obapi.HistoryCancelled: func(s opStatus) bool { return s == stCancelled },
	obapi.HistoryRejected:  func(s opStatus) bool { return s == stRejected },
	obapi.HistoryAll:       func(opStatus) bool { return true },
}

// getOrderHistory answers GET /orders?trader=&status=&limit=&before=: the
// trader's orders, newest first. before is the order id the previous page
// ended with (its "next").
func (r *Replica) getOrderHistory(c *gin.Context) {
	trader, err := parseAddress("trader", c.Query("trader"))
	if err != nil {
		failErr(c, err)
		return
	}
	status := c.DefaultQuery("status", obapi.HistoryAll)
	keep, ok := historyFilters[status]
	if !ok {
		fail(c, http.StatusBadRequest, "status: expected open, filled, cancelled, rejected or all, got %q", clip(status))
		return
	}
	limit, ok := intParam(c, "limit", r.cfg.OrdersPageMax, r.cfg.OrdersPageMax)
	if !ok {
		return
	}
	var beforeID [32]byte
	hasBefore := c.Query("before") != ""
	if hasBefore {
		if beforeID, err = parseHash32("before", c.Query("before")); err != nil {
			failErr(c, err)
			return
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var before uint64
	if hasBefore {
		rec, found := r.ledger.record(beforeID)
		if !found || !rec.Kind.IsOrder() || rec.Trader != trader {
			fail(c, http.StatusBadRequest, "before: %s is not an order of %s known to this replica", hexID(beforeID), trader.Hex())
			return
		}
		before = rec.Seq
	}
	recs, more := r.ledger.orders.history(r.ledger.records, trader, keep, before, limit)
	out := obapi.OrderHistory{Index: r.ledger.index, Orders: make([]obapi.Order, len(recs))}
	for i, rec := range recs {
		out.Orders[i] = r.orderJSON(rec)
	}
	if more {
		out.Next = hexID(recs[len(recs)-1].ID)
	}
	c.JSON(http.StatusOK, out)
}

// getBalances answers GET /balances?address=: every non-zero token.
func (r *Replica) getBalances(c *gin.Context) {
	addr, err := parseAddress("address", c.Query("address"))
	if err != nil {
		failErr(c, err)
		return
	}
	r.mu.RLock()
	bs := r.ledger.eng.AccountBalances(addr.Hex())
	out := obapi.Balances{Address: addr.Hex(), Index: r.ledger.index, Balances: make([]obapi.TokenBalance, len(bs))}
	r.mu.RUnlock()
	for i, b := range bs {
		out.Balances[i] = obapi.TokenBalance{Token: b.Token, Available: amount.Format(b.Available), Reserved: amount.Format(b.Reserved),
			AvailableUnits: strconv.FormatUint(b.Available, 10), ReservedUnits: strconv.FormatUint(b.Reserved, 10)}
	}
	c.JSON(http.StatusOK, out)
}

// dayMs is the window of GET /markets' volume, in batch-time milliseconds.
const dayMs = 24 * 60 * 60 * 1000

// getMarkets answers GET /markets: per market the best bid and ask, the
// last trade's price and the volume of the trades whose batch time lies
// within 24 h before the last applied batch's time.
func (r *Replica) getMarkets(c *gin.Context) {
	r.mu.RLock()
	l := r.ledger
	out := obapi.Markets{Index: l.index, Timestamp: l.timestamp, Markets: []obapi.MarketInfo{}}
	markets := l.eng.Markets()
	stats, complete := l.marketStats(dayMs, len(markets))
	for _, m := range markets {
		info := obapi.MarketInfo{Market: m, VolumeComplete: complete}
		bids, asks := l.eng.Depth(m, 1)
		if len(bids) > 0 {
			info.BestBid = amount.Format(bids[0].Price)
		}
		if len(asks) > 0 {
			info.BestAsk = amount.Format(asks[0].Price)
		}
		st := stats[m]
		if st.hasLast {
			info.LastPrice = amount.Format(st.last)
		}
		info.Volume24h, info.QuoteVolume24h = amount.Format(st.volume), amount.Format(st.quoteVolume)
		info.Trades24h = st.trades
		out.Markets = append(out.Markets, info)
	}
	r.mu.RUnlock()
	c.JSON(http.StatusOK, out)
}
