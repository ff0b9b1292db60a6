package aggregator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"
)

var ginMode sync.Once

// Handler returns the aggregator's HTTP API (DESIGN §6):
//
//	GET /aggregate_balance?address=0x…&token=…  → BalanceProof
//	GET /aggregate_withdrawal?id=0x…            → WithdrawalProof
//	GET /aggregate_state?index=N                → StateProof
//	GET /ready                                  → {"status":"ok"}
//
// Bad queries get 400; when fewer than the threshold of replicas agree the
// answer is 424 (404 for a withdrawal no quorum knows), with {"error",
// "replicas": [{"replica","answer"}]} saying who answered what. At most
// cfg.InFlightMax proofs are built at once; beyond that the answer is 503.
func (a *Aggregator) Handler() http.Handler {
	ginMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(a.recover())
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method " + c.Request.Method + " not allowed on " + c.Request.URL.Path})
	})
	slots := make(chan struct{}, a.cfg.InFlightMax)
	limit := func(c *gin.Context) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			c.Next()
		default:
			c.Header("Retry-After", "1")
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": fmt.Sprintf("busy: %d proofs in progress", a.cfg.InFlightMax)})
		}
	}
	r.GET("/aggregate_balance", a.observeProof("balance"), limit, a.handleBalance)
	r.GET("/aggregate_withdrawal", a.observeProof("withdrawal"), limit, a.handleWithdrawal)
	r.GET("/aggregate_state", limit, a.handleState)
	r.GET("/ready", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/metrics", gin.WrapH(a.metrics.Handler()))
	return r
}

// recover turns a panic into a 500 with a JSON body and a log line instead
// of a dropped connection.
func (a *Aggregator) recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				a.log.Error("panic serving a request", "path", c.Request.URL.Path, "panic", fmt.Sprint(v))
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
			}
		}()
		c.Next()
	}
}

func (a *Aggregator) handleBalance(c *gin.Context) {
	address, token, err := ParseBalanceQuery(c.Request.URL.Query())
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	p, err := a.Balance(c.Request.Context(), address, token)
	if err != nil {
		a.answerError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (a *Aggregator) handleWithdrawal(c *gin.Context) {
	id, err := ParseWithdrawalQuery(c.Request.URL.Query())
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	p, err := a.Withdrawal(c.Request.Context(), id)
	if err != nil {
		a.answerError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (a *Aggregator) handleState(c *gin.Context) {
	index, err := ParseStateQuery(c.Request.URL.Query())
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	p, err := a.State(c.Request.Context(), index)
	if err != nil {
		a.answerError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (a *Aggregator) answerError(c *gin.Context, err error) {
	var qe *QuorumError
	if errors.As(err, &qe) {
		status := http.StatusFailedDependency
		if qe.NotFound {
			status = http.StatusNotFound
		}
		c.JSON(status, gin.H{"error": qe.Reason, "replicas": qe.Replicas})
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The client went away; nobody reads this answer.
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "request cancelled"})
		return
	}
	a.log.Error("building a proof failed", "path", c.Request.URL.Path, "err", err)
	c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
}

// queryValueBytesMax bounds a query value before any parsing: the longest
// legitimate one is a 66-character withdrawal id or a token name.
const queryValueBytesMax = 256

// one returns the single value of a query parameter.
func one(q url.Values, name string) (string, error) {
	vs := q[name]
	switch {
	case len(vs) == 0 || vs[0] == "":
		return "", fmt.Errorf("%s: missing", name)
	case len(vs) > 1:
		return "", fmt.Errorf("%s: given %d times", name, len(vs))
	case len(vs[0]) > queryValueBytesMax:
		return "", fmt.Errorf("%s: longer than %d bytes", name, queryValueBytesMax)
	}
	return vs[0], nil
}

// ParseBalanceQuery checks the query of GET /aggregate_balance: address a
// 0x-prefixed 20-byte hex address (any letter case), token a token name.
func ParseBalanceQuery(q url.Values) (common.Address, string, error) {
	addr, err := one(q, "address")
	if err != nil {
		return common.Address{}, "", err
	}
	if !isAddress(addr) {
		return common.Address{}, "", fmt.Errorf("address: %q is not a 0x-prefixed 20-byte hex address", addr)
	}
	token, err := one(q, "token")
	if err != nil {
		return common.Address{}, "", err
	}
	if err := checkToken(token); err != nil {
		return common.Address{}, "", fmt.Errorf("token: %w", err)
	}
	return common.HexToAddress(addr), token, nil
}

// ParseWithdrawalQuery checks the query of GET /aggregate_withdrawal: id a
// 0x-prefixed 32-byte hex withdrawal id.
func ParseWithdrawalQuery(q url.Values) ([32]byte, error) {
	id, err := one(q, "id")
	if err != nil {
		return [32]byte{}, err
	}
	h, err := parseHash(id)
	if err != nil {
		return [32]byte{}, fmt.Errorf("id: %w", err)
	}
	return h, nil
}

// ParseStateQuery checks the query of GET /aggregate_state: index a
// positive decimal integer (replicas attest every AttestEvery indexes).
func ParseStateQuery(q url.Values) (uint64, error) {
	s, err := one(q, "index")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || s[0] == '+' {
		return 0, fmt.Errorf("index: %q is not a positive decimal integer", s)
	}
	return n, nil
}
