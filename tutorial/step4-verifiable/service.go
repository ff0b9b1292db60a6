package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/tutorial/internal/replicated"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// Waits bounded by the service.
const (
	// indexWaitMax: a /balance?index=N just ahead of this instance waits
	// this long for it (another instance may have applied it a moment
	// earlier).
	indexWaitMax = time.Second
	// orderWaitMax bounds POST /order?wait=applied.
	orderWaitMax = 30 * time.Second
)

// identity is what GET /identity serves: who this instance is and the key
// it signs balances with, with its proof of possession.
type identity struct {
	ID        string `json:"id"`
	App       string `json:"app"`
	ChainID   uint64 `json:"chain_id"`
	BLSPubkey string `json:"bls_pubkey"`
	BLSPop    string `json:"bls_pop"`
}

// instance is one step-4 service: the replicated orderbook plus its key.
type instance struct {
	id     string
	app    string
	domain eip712.Domain
	key    *bls.SecretKey
	pop    string
	ledger *ledger
	seq    *client.Sequencer
	log    *slog.Logger
}

func newInstance(c *cluster.Cluster, app, id string, key *bls.SecretKey, genesis []tut.Funding, log *slog.Logger) (*instance, error) {
	l, err := newLedger(genesis)
	if err != nil {
		return nil, err
	}
	return &instance{id: id, app: app, domain: c.Domain, key: key, pop: key.ProvePossession().Hex(), ledger: l,
		seq: client.NewSequencer(c, client.WithTimeout(5*time.Second), client.WithLogger(log)), log: log}, nil
}

// follow applies the app's finalized batches, each verified by the SDK
// (hashes, chain, the nodes' aggregated finality signature), until ctx
// ends.
func (s *instance) follow(ctx context.Context) error {
	return s.seq.Follow(ctx, s.app, 0, [32]byte{}, func(b client.Batch) error {
		s.ledger.apply(b.Index, b.Body)
		return nil
	})
}

func (s *instance) routes() http.Handler {
	r := tut.NewEngine()
	r.POST("/order", s.placeOrder)
	r.GET("/orders", func(c *gin.Context) { c.JSON(http.StatusOK, s.ledger.Book().OpenOrders()) })
	r.GET("/balance", s.balance)
	r.GET("/state", s.state)
	r.GET("/identity", func(c *gin.Context) {
		c.JSON(http.StatusOK, identity{ID: s.id, App: s.app, ChainID: s.domain.ChainID, BLSPubkey: s.key.PublicKey().Hex(), BLSPop: s.pop})
	})
	return r
}

func (s *instance) placeOrder(c *gin.Context) {
	var req tut.OrderRequest
	if e := tut.DecodeJSON(c, &req); e != nil {
		tut.Abort(c, e)
		return
	}
	qty, e := tut.PositiveAmount("quantity", req.Quantity)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	price, e := tut.PositiveAmount("price", req.Price)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	ck, e := replicated.CheckOrder(req.Sender, req.OrderType, req.BaseToken, req.QuoteToken, qty, price, req.Signature)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	// The tutorial's "basic balance check" against this instance's view;
	// the final word is the applied order's.
	need, tok := qty, req.BaseToken
	if req.OrderType == "buy" {
		need, _ = amount.Quote(qty, price)
		tok = req.QuoteToken
	}
	if have := s.ledger.Book().Balance(ck.Order.Account, tok); have < need {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusForbidden,
			Msg: fmt.Sprintf("insufficient %s balance: the order needs %s, available %s", tok, amount.Format(need), amount.Format(have))})
		return
	}
	if s.ledger.SignatureUsed(ck.SigKey) {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusConflict, Msg: "signature already used: each legacy signature places one order"})
		return
	}
	body, err := json.Marshal([]replicated.OrderPayload{replicated.PayloadOf(ck.Order, req.Signature)})
	if err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusInternalServerError, Msg: err.Error()})
		return
	}
	if err := s.seq.Send(c.Request.Context(), s.app, body); err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusBadGateway, Msg: "sending to the sequencer: " + err.Error()})
		return
	}
	s.log.Info("order sent to the sequencer", cli.KeyTrader, ck.Order.Account, cli.KeyOrderID, ck.Order.ID, "message", ck.Text)
	if c.Query("wait") != "applied" {
		c.JSON(http.StatusOK, gin.H{"message": replicated.SentMessage, "order_id": ck.Order.ID})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), orderWaitMax)
	defer cancel()
	for {
		_, changed := s.ledger.State()
		if o, ok := s.ledger.OutcomeOf(ck.Order.ID); ok {
			c.JSON(http.StatusOK, gin.H{"message": "Order applied", "order_id": ck.Order.ID, "outcome": o})
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			tut.Abort(c, &tut.HTTPError{Status: http.StatusGatewayTimeout, Msg: "the order was sent but not applied within " + orderWaitMax.String()})
			return
		}
	}
}

// balance answers GET /balance?address=&token=[&index=N] with a BLS
// signature over the EIP-712 digest of
// Balance(string app,address account,string token,uint256 balance,uint64 index):
// the same message as the full system's replicas sign, with this
// instance's app and the balance it shows (available funds, as in steps
// 1–3).
func (s *instance) balance(c *gin.Context) {
	addr := c.Query("address")
	if !strings.HasPrefix(addr, "0x") || !common.IsHexAddress(addr) {
		tut.Abort(c, tut.BadRequest("address: %q is not a 0x-prefixed 20-byte hex address", addr))
		return
	}
	account := common.HexToAddress(addr)
	token := c.Query("token")
	if e := tut.Token("token", token); e != nil {
		tut.Abort(c, e)
		return
	}
	applied, changed := s.ledger.State()
	at := applied
	if q := c.Query("index"); q != "" {
		v, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			tut.Abort(c, tut.BadRequest("index: %q is not an applied index", q))
			return
		}
		at = v
		timer := time.NewTimer(indexWaitMax)
		defer timer.Stop()
		for applied < at {
			select {
			case <-changed:
			case <-timer.C:
				tut.Abort(c, &tut.HTTPError{Status: http.StatusConflict, Msg: fmt.Sprintf("index %d is not applied yet (applied %d)", at, applied)})
				return
			case <-c.Request.Context().Done():
				return
			}
			applied, changed = s.ledger.State()
		}
	}
	v, err := s.ledger.balanceAt(account.Hex(), token, at)
	if err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusGone, Msg: err.Error()})
		return
	}
	d := s.domain.Digest(&eip712.Balance{App: s.app, Account: account, Token: token, Balance: v, Index: at})
	c.JSON(http.StatusOK, obapi.Balance{Address: account.Hex(), Token: token, Balance: amount.Format(v),
		BalanceUnits: strconv.FormatUint(v, 10), Index: at, Replica: s.id, Signature: s.key.Sign(d).Hex()})
}

func (s *instance) state(c *gin.Context) {
	applied, _ := s.ledger.State()
	c.JSON(http.StatusOK, obapi.State{App: s.app, Replica: s.id, AppliedIndex: applied, OpenOrders: len(s.ledger.Book().OpenOrders())})
}
