package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/matcher"
)

// routes builds the HTTP API (docs/api.md).
func (r *Replica) routes() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	g := gin.New()
	g.HandleMethodNotAllowed = true
	g.Use(r.recoverJSON)
	g.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path)
	})
	g.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method %s not allowed on %s", c.Request.Method, c.Request.URL.Path)
	})

	g.POST("/order", r.postOrder)
	g.POST("/cancel", r.postOp(DecodeCancelRequest))
	g.POST("/withdraw", r.postOp(DecodeWithdrawRequest))
	g.POST("/deposit", r.postOp(DecodeDepositRequest))

	g.GET("/orders", r.getOrders)
	g.GET("/orders/:id", r.getOrder)
	g.GET("/ops/:id", r.getOp)
	g.GET("/trades", r.getTrades)
	g.GET("/depth", r.getDepth)
	g.GET("/balance", r.getBalance)
	g.GET("/withdrawals/:id", r.getWithdrawal)
	g.GET("/eip712", r.getEIP712)
	g.GET("/state", r.getState)
	r.tradingRoutes(g)
	g.GET("/attestation", r.getAttestation)
	r.liveRoutes(g)
	return g
}

// recoverJSON turns a handler panic (a bug) into a 500 JSON answer and a
// log line instead of a dropped connection.
func (r *Replica) recoverJSON(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("handler panic", "path", c.Request.URL.Path, "panic", v)
			fail(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func fail(c *gin.Context, status int, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = errorf(format, args...)
	}
	c.AbortWithStatusJSON(status, obapi.Error{Error: msg})
}

// failErr answers an error: its own status for httpError, 400 otherwise
// (decode and field errors).
func failErr(c *gin.Context, err error) {
	var he *httpError
	if errors.As(err, &he) {
		fail(c, he.status, "%s", he.msg)
		return
	}
	fail(c, http.StatusBadRequest, "%s", err.Error())
}

// readBody reads a bounded request body.
func (r *Replica) readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, r.cfg.RequestBytesMax))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(c, http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", r.cfg.RequestBytesMax)
		} else {
			fail(c, http.StatusBadRequest, "reading the request body: %v", err)
		}
		return nil, false
	}
	return body, true
}

// waitParams reads ?wait=finalized and ?timeout=.
func (r *Replica) waitParams(c *gin.Context) (wait bool, d time.Duration, ok bool) {
	switch w := c.Query("wait"); w {
	case "":
	case "finalized":
		wait = true
	default:
		fail(c, http.StatusBadRequest, "wait: expected \"finalized\", got %q", clip(w))
		return false, 0, false
	}
	d = r.cfg.WaitDefault
	if t := c.Query("timeout"); t != "" {
		v, err := time.ParseDuration(t)
		if err != nil {
			secs, err2 := strconv.ParseUint(t, 10, 32)
			if err2 != nil {
				fail(c, http.StatusBadRequest, "timeout: expected a duration such as 5s or a number of seconds, got %q", clip(t))
				return false, 0, false
			}
			v = time.Duration(secs) * time.Second
		}
		if v <= 0 {
			fail(c, http.StatusBadRequest, "timeout: must be positive")
			return false, 0, false
		}
		d = min(v, r.cfg.WaitMax)
	}
	return wait, d, true
}

func (r *Replica) postOrder(c *gin.Context) { r.postOp(DecodeOrderRequest)(c) }

// readSubmission reads what every submission starts with: ?wait= and
// ?timeout=, then the bounded body. ok false means it answered already.
func (r *Replica) readSubmission(c *gin.Context) (wait bool, d time.Duration, body []byte, ok bool) {
	if wait, d, ok = r.waitParams(c); !ok {
		return false, 0, nil, false
	}
	body, ok = r.readBody(c)
	return wait, d, body, ok
}

func (r *Replica) postOp(decode func(*Domain, []byte) (*Op, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		wait, d, body, ok := r.readSubmission(c)
		if !ok {
			return
		}
		op, err := decode(r.cfg.Domain, body)
		if err != nil {
			failErr(c, err)
			return
		}
		r.submitAndAnswer(c, op, wait, d)
	}
}

func (r *Replica) submitAndAnswer(c *gin.Context, op *Op, wait bool, d time.Duration) {
	var ch chan OpOutcome
	if wait {
		ch = r.addWaiter(op.ID)
		defer r.dropWaiter(op.ID, ch)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), r.cfg.SendTimeout+time.Second)
	defer cancel()
	err := r.submit(ctx, op)
	r.prom.observeIntake(op, err)
	pending := errors.Is(err, errPending)
	if err != nil && !pending {
		failErr(c, err)
		return
	}
	if !wait || pending && c.Request.Context().Err() != nil {
		answerAccepted(c, op, pending)
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case o := <-ch:
		r.answerOutcome(c, op, o)
	case <-timer.C:
		// Not applied in time: its outcome (applied, or rejected when
		// applied) is not known yet, whether a node confirmed it or not.
		answerAccepted(c, op, true)
	case <-c.Request.Context().Done():
	}
}

// answerAccepted answers an operation taken by a node (200 "accepted") or
// one whose outcome is not known yet (202 "pending": it stays in the
// outbox and will be sent; the client follows it with GET /orders/{id} or
// GET /ops/{id} and must not re-sign it).
func answerAccepted(c *gin.Context, op *Op, pending bool) {
	status, code, msg := obapi.StatusAccepted, http.StatusOK, ""
	if pending {
		status, code, msg = obapi.StatusPending, http.StatusAccepted, pendingMessage(op)
	}
	if op.Kind.IsOrder() {
		c.JSON(code, obapi.OrderAccepted{OrderID: op.IDHex(), Status: status, Message: msg})
	} else {
		c.JSON(code, obapi.OpAccepted{ID: op.IDHex(), Status: status, Message: msg})
	}
}

// pendingMessage tells a client how to follow an operation whose outcome
// is not known yet, and how to retry it.
func pendingMessage(op *Op) string {
	route := "/ops/"
	if op.Kind.IsOrder() {
		route = "/orders/"
	}
	return "pending — query GET " + route + op.IDHex() + "; the replica keeps sending it until it is applied or expires; to retry, resend the same signed request, never a re-signed one"
}

func (r *Replica) answerOutcome(c *gin.Context, op *Op, o OpOutcome) {
	r.mu.RLock()
	rec, ok := r.ledger.record(op.ID)
	var order obapi.Order
	var res obapi.OpResult
	if ok {
		order, res = r.orderJSON(rec), opResultJSON(rec)
	}
	r.mu.RUnlock()
	if !ok {
		res = obapi.OpResult{ID: op.IDHex(), Op: op.Kind.String(), Status: o.Status, Reason: o.Reason}
	}
	if op.Kind.IsOrder() && ok {
		c.JSON(http.StatusOK, order)
		return
	}
	c.JSON(http.StatusOK, res)
}

// ---- Reads ----

func (r *Replica) orderJSON(rec *record) obapi.Order {
	o := obapi.Order{
		OrderID: hexID(rec.ID), Op: rec.Kind.String(), Trader: rec.Trader.Hex(), Market: rec.Market,
		Side: rec.Side.String(), OrderType: rec.OrderType.String(),
		Quantity: amount.Format(rec.Quantity), Price: amount.Format(rec.Price),
		Filled: amount.Format(rec.Filled), Remaining: amount.Format(rec.Quantity - rec.Filled),
		Status: rec.Status.String(), Reason: rec.Reason, Index: rec.Index, Timestamp: rec.Timestamp,
		Fills: make([]obapi.Fill, len(rec.Fills)), FillsDropped: rec.FillsDropped,
	}
	for i, f := range rec.Fills {
		role := "taker"
		if f.Maker {
			role = "maker"
		}
		o.Fills[i] = obapi.Fill{Trade: f.Trade, Role: role, Price: amount.Format(f.Price), Quantity: amount.Format(f.Quantity),
			Quote: amount.Format(f.Quote), Counterparty: hexID(f.Counterparty), Index: f.Index}
	}
	return o
}

func pendingOrderJSON(op *Op) obapi.Order {
	return obapi.Order{
		OrderID: op.IDHex(), Op: op.Kind.String(), Trader: op.Signer.Hex(), Market: op.Market,
		Side: op.Side.String(), OrderType: op.OrderType.String(),
		Quantity: amount.Format(op.Quantity), Price: amount.Format(op.Price),
		Filled: "0", Remaining: amount.Format(op.Quantity), Status: obapi.StatusPending, Fills: []obapi.Fill{},
	}
}

func opResultJSON(rec *record) obapi.OpResult {
	res := obapi.OpResult{ID: hexID(rec.ID), Op: rec.Kind.String(), Status: rec.Status.String(), Reason: rec.Reason,
		Index: rec.Index, Timestamp: rec.Timestamp}
	if rec.Kind == OpCancelAll && rec.Status == stApplied {
		n := rec.Cancelled
		res.Cancelled = &n
	}
	return res
}

func (r *Replica) getOrders(c *gin.Context) {
	if c.Query("status") != "" || c.Query("before") != "" {
		r.getOrderHistory(c)
		return
	}
	limit, ok := intParam(c, "limit", r.cfg.OrdersPageMax, r.cfg.OrdersPageMax)
	if !ok {
		return
	}
	var trader string
	if t := c.Query("trader"); t != "" {
		a, err := parseAddress("trader", t)
		if err != nil {
			failErr(c, err)
			return
		}
		trader = a.Hex()
	}
	r.mu.RLock()
	var infos []matcher.OrderInfo
	if trader != "" {
		infos = r.ledger.eng.AccountOrders(trader)
	} else {
		infos = r.ledger.eng.OpenOrders()
	}
	if len(infos) > limit {
		infos = infos[:limit]
	}
	out := obapi.Orders{Index: r.ledger.index, Orders: make([]obapi.Order, 0, len(infos))}
	for _, info := range infos {
		id, _ := parseHash32("id", info.ID)
		if rec, ok := r.ledger.record(id); ok {
			out.Orders = append(out.Orders, r.orderJSON(rec))
		}
	}
	r.mu.RUnlock()
	c.JSON(http.StatusOK, out)
}

func (r *Replica) idParam(c *gin.Context) ([32]byte, bool) {
	id, err := parseHash32("id", c.Param("id"))
	if err != nil {
		failErr(c, err)
		return id, false
	}
	return id, true
}

func (r *Replica) getOrder(c *gin.Context) {
	id, ok := r.idParam(c)
	if !ok {
		return
	}
	r.mu.RLock()
	rec, found := r.ledger.record(id)
	var o obapi.Order
	if found && rec.Kind.IsOrder() {
		o = r.orderJSON(rec)
	}
	r.mu.RUnlock()
	if found && rec.Kind.IsOrder() {
		c.JSON(http.StatusOK, o)
		return
	}
	if op, pending := r.in.get(id); pending && op.Kind.IsOrder() {
		c.JSON(http.StatusOK, pendingOrderJSON(op))
		return
	}
	fail(c, http.StatusNotFound, "order %s is unknown to this replica (never seen, or its record was evicted)", hexID(id))
}

func (r *Replica) getOp(c *gin.Context) {
	id, ok := r.idParam(c)
	if !ok {
		return
	}
	r.mu.RLock()
	rec, found := r.ledger.record(id)
	var res obapi.OpResult
	if found {
		res = opResultJSON(rec)
	}
	r.mu.RUnlock()
	if found {
		c.JSON(http.StatusOK, res)
		return
	}
	if op, pending := r.in.get(id); pending {
		c.JSON(http.StatusOK, obapi.OpResult{ID: op.IDHex(), Op: op.Kind.String(), Status: obapi.StatusPending})
		return
	}
	fail(c, http.StatusNotFound, "operation %s is unknown to this replica (never seen, or its record was evicted)", hexID(id))
}

func intParam(c *gin.Context, name string, def, maxV int) (int, bool) {
	s := c.Query(name)
	if s == "" {
		return def, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		fail(c, http.StatusBadRequest, "%s: expected a positive integer, got %q", name, clip(s))
		return 0, false
	}
	return min(v, maxV), true
}

func (r *Replica) getTrades(c *gin.Context) {
	var after uint64
	if s := c.Query("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(c, http.StatusBadRequest, "after: expected a trade sequence number, got %q", clip(s))
			return
		}
		after = v
	}
	limit, ok := intParam(c, "limit", obapi.TradesPageMax, obapi.TradesPageMax)
	if !ok {
		return
	}
	market := c.Query("market")
	if market != "" {
		if _, err := parseMarket(market); err != nil {
			failErr(c, err)
			return
		}
	}
	var trader string
	if s := c.Query("trader"); s != "" {
		a, err := parseAddress("trader", s)
		if err != nil {
			failErr(c, err)
			return
		}
		trader = a.Hex()
	}
	r.mu.RLock()
	ts, next := r.ledger.tradesAfter(market, trader, after, limit)
	out := obapi.Trades{Index: r.ledger.index, Trades: make([]obapi.Trade, len(ts)), Next: next}
	r.mu.RUnlock()
	for i, t := range ts {
		out.Trades[i] = tradeJSON(t)
	}
	c.JSON(http.StatusOK, out)
}

func tradeJSON(t trade) obapi.Trade {
	return obapi.Trade{Seq: t.Seq, Market: t.Market, Price: amount.Format(t.Price), Quantity: amount.Format(t.Quantity),
		Quote: amount.Format(t.Quote), MakerOrder: hexID(t.MakerOrder), TakerOrder: hexID(t.TakerOrder),
		Maker: t.Maker, Taker: t.Taker, TakerSide: t.TakerSide.String(), Index: t.Index, Timestamp: t.Timestamp}
}

func (r *Replica) getDepth(c *gin.Context) {
	market, err := parseMarket(c.Query("market"))
	if err != nil {
		failErr(c, err)
		return
	}
	levels, ok := intParam(c, "levels", 50, 1000)
	if !ok {
		return
	}
	r.mu.RLock()
	bids, asks := r.ledger.eng.Depth(market, levels)
	index := r.ledger.index
	r.mu.RUnlock()
	c.JSON(http.StatusOK, obapi.Depth{Market: market, Index: index, Bids: levelsJSON(bids), Asks: levelsJSON(asks)})
}

func levelsJSON(ls []matcher.Level) []obapi.Level {
	out := make([]obapi.Level, len(ls))
	for i, l := range ls {
		out[i] = levelJSON(l)
	}
	return out
}

func levelJSON(l matcher.Level) obapi.Level {
	return obapi.Level{Price: amount.Format(l.Price), Quantity: amount.Format(l.Quantity), Orders: l.Orders}
}

func (r *Replica) getBalance(c *gin.Context) {
	if r.refuseUnvouched(c) {
		return
	}
	addr, err := parseAddress("address", c.Query("address"))
	if err != nil {
		failErr(c, err)
		return
	}
	tok, err := parseToken("token", c.Query("token"))
	if err != nil {
		failErr(c, err)
		return
	}
	var at uint64
	hasIndex := false
	if s := c.Query("index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(c, http.StatusBadRequest, "index: expected an applied index, got %q", clip(s))
			return
		}
		at, hasIndex = v, true
		if !r.waitIndex(c.Request.Context(), at, r.cfg.IndexWaitMax) {
			fail(c, http.StatusConflict, "index %d is not applied yet (applied %d); retry later", at, r.Applied())
			return
		}
	}
	r.mu.RLock()
	if !hasIndex {
		at = r.ledger.index
	}
	v, err := r.ledger.BalanceAt(addr.Hex(), tok, at)
	r.mu.RUnlock()
	if err != nil {
		if errors.Is(err, errIndexGone) {
			fail(c, http.StatusGone, "%v", err)
		} else {
			fail(c, http.StatusConflict, "%v", err)
		}
		return
	}
	r.prom.SignedReads.WithLabelValues("balance").Inc()
	digest := r.cfg.Domain.EIP712.Digest(&eip712.Balance{App: r.cfg.Domain.App, Account: addr, Token: tok, Balance: v, Index: at})
	c.JSON(http.StatusOK, obapi.Balance{
		Address: addr.Hex(), Token: tok, Balance: amount.Format(v), BalanceUnits: strconv.FormatUint(v, 10),
		Index: at, Replica: r.cfg.ID, Signature: r.cfg.Key.Sign(digest).Hex(),
	})
}

func (r *Replica) getWithdrawal(c *gin.Context) {
	if r.refuseUnvouched(c) {
		return
	}
	id, ok := r.idParam(c)
	if !ok {
		return
	}
	w, found, err := r.store.Withdrawal(id)
	if err != nil {
		fail(c, http.StatusInternalServerError, "reading withdrawal: %v", err)
		return
	}
	if !found {
		fail(c, http.StatusNotFound, "withdrawal %s is not recorded (not applied yet, or rejected: see GET /ops/%s)", hexID(id), hexID(id))
		return
	}
	msg := &eip712.Withdrawal{App: r.cfg.Domain.App, ID: w.ID, Trader: w.Trader, Token: w.Token, Amount: w.Amount,
		Recipient: w.Recipient, Index: w.Index}
	r.prom.SignedReads.WithLabelValues("withdrawal").Inc()
	sig := r.cfg.Key.Sign(r.cfg.Domain.EIP712.Digest(msg))
	c.JSON(http.StatusOK, obapi.Withdrawal{
		App: r.cfg.Domain.App, ID: hexID(w.ID), Trader: w.Trader.Hex(), Token: w.Token, Amount: amount.Format(w.Amount),
		AmountUnits: strconv.FormatUint(w.Amount, 10), Recipient: w.Recipient.Hex(), Index: w.Index, Timestamp: w.Timestamp,
		Replica: r.cfg.ID, Signature: sig.Hex(),
	})
}

func (r *Replica) getEIP712(c *gin.Context) {
	c.JSON(http.StatusOK, r.cfg.Domain.EIP712.Description())
}

func (r *Replica) getState(c *gin.Context) {
	r.mu.RLock()
	l := r.ledger
	sd, md := l.Digest()
	_, tradeSeq := l.eng.Counters()
	out := obapi.State{
		App: r.cfg.Domain.App, Replica: r.cfg.ID, AppliedIndex: l.index, ChainingHash: hexID(l.chain),
		Timestamp: l.timestamp, StateDigest: hexID(sd), MatcherDigest: hexID(md),
		OpenOrders: l.eng.OpenOrderCount(), Trades: tradeSeq,
	}
	r.mu.RUnlock()
	out.Pending = r.in.count()
	if x, ok := r.att.latest(); ok {
		out.Attested = x.index
	}
	out.Diverged = r.att.divergence()
	out.Rebuilding = r.rebuildStatus()
	c.JSON(http.StatusOK, out)
}

func errorf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
