// Command step1-centralized is step 1 of the orderbook tutorial: a
// centralized orderbook with username/password sessions, no signatures, no
// replication. It keeps the tutorial's routes and JSON:
//
//	POST /login   {"username","password"}         sets the session cookie
//	GET  /balance ?username=&token=               {username, token, balance, balance_units} (the session's user if username is omitted)
//	GET  /orders                                  open orders
//	POST /order   {"order_type","base_token","quote_token","quantity","price"}
//
// Users are user1/pass1 (1000 USDT) and user2/pass2 (5 ETH). Orders are
// limit orders matched by the real matcher (price-time priority, trades at
// the resting order's price). Amounts are exact decimals: JSON numbers or
// strings in, JSON numbers out.
//
//	step1-centralized [--port 5001] [--host 127.0.0.1]
package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// The tutorial's users and their passwords: a demo, so they are fixed.
var tutorialUsers = map[string]string{"user1": "pass1", "user2": "pass2"}

// sessionCookie is the cookie that carries a session token.
const sessionCookie = "session"

// sessionsMax bounds the session table: each login adds one, and logins
// need no account of their own beyond the two users, so without a bound a
// script logging in in a loop would grow memory forever. The oldest session
// is dropped first.
const sessionsMax = 10_000

// sessions maps random tokens to usernames. A token is 32 bytes from the
// CSPRNG, so it cannot be guessed; it lives in memory only, like the rest of
// this step.
type sessions struct {
	mu     sync.Mutex
	byTok  map[string]string
	oldest []string // tokens in creation order, for eviction
}

func newSessions() *sessions { return &sessions{byTok: map[string]string{}} }

func (s *sessions) create(user string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.oldest) >= sessionsMax {
		delete(s.byTok, s.oldest[0])
		s.oldest = s.oldest[1:]
	}
	s.byTok[tok] = user
	s.oldest = append(s.oldest, tok)
	return tok, nil
}

func (s *sessions) user(tok string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byTok[tok]
	return u, ok
}

type server struct {
	book     *tut.Book
	sessions *sessions
}

func newServer() (*server, error) {
	book, err := tut.NewBook(tut.TutorialGenesis("user1", "user2"))
	if err != nil {
		return nil, err
	}
	return &server{book: book, sessions: newSessions()}, nil
}

func (s *server) routes() http.Handler {
	r := tut.NewEngine()
	r.POST("/login", s.login)
	r.GET("/balance", s.balance)
	r.GET("/orders", s.orders)
	r.POST("/order", s.placeOrder)
	return r
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *server) login(c *gin.Context) {
	var req loginRequest
	if e := tut.DecodeJSON(c, &req); e != nil {
		tut.Abort(c, e)
		return
	}
	want, ok := tutorialUsers[req.Username]
	// Compare in constant time even for unknown users, so timing does not
	// tell which usernames exist.
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(want)) != 1 || !ok {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusUnauthorized, Msg: "invalid credentials"})
		return
	}
	tok, err := s.sessions.create(req.Username)
	if err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusInternalServerError, Msg: "cannot create a session"})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	slog.Info("login", "username", req.Username)
	c.JSON(http.StatusOK, gin.H{"message": "Login successful"})
}

// sessionUser returns the logged-in user of the request, if any.
func (s *server) sessionUser(c *gin.Context) (string, bool) {
	tok, err := c.Cookie(sessionCookie)
	if err != nil || tok == "" {
		return "", false
	}
	return s.sessions.user(tok)
}

func (s *server) balance(c *gin.Context) {
	user := c.Query("username")
	if user == "" {
		var ok bool
		if user, ok = s.sessionUser(c); !ok {
			tut.Abort(c, tut.BadRequest("query parameter \"username\" is required (or log in first)"))
			return
		}
	}
	token := c.Query("token")
	if e := tut.Token("token", token); e != nil {
		tut.Abort(c, e)
		return
	}
	tut.WriteBalance(c, tut.Balance{Username: user, Token: token}, s.book.Balance(user, token))
}

func (s *server) orders(c *gin.Context) {
	c.JSON(http.StatusOK, s.book.OpenOrders())
}

type orderRequest struct {
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   tut.AmountField `json:"quantity"`
	Price      tut.AmountField `json:"price"`
}

func (s *server) placeOrder(c *gin.Context) {
	user, ok := s.sessionUser(c)
	if !ok {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusUnauthorized, Msg: "not logged in: POST /login first and send the session cookie"})
		return
	}
	var req orderRequest
	if e := tut.DecodeJSON(c, &req); e != nil {
		tut.Abort(c, e)
		return
	}
	in, e := validate(req)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	id, err := newOrderID()
	if err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusInternalServerError, Msg: "cannot make an order id"})
		return
	}
	in.ID, in.Account = id, user
	var placed *tut.Placed
	s.book.Lock(func(l *tut.Locked) { placed, e = l.Place(in) })
	if e != nil {
		tut.Abort(c, e)
		return
	}
	slog.Info("order", "username", user, cli.KeyOrderID, id, "side", in.Side, "status", placed.Status, "fills", len(placed.Fills))
	c.JSON(http.StatusOK, placed)
}

// validate checks an order request field by field, naming the first bad one.
func validate(req orderRequest) (tut.OrderIn, *tut.HTTPError) {
	if e := tut.Side(req.OrderType); e != nil {
		return tut.OrderIn{}, e
	}
	if e := tut.Token("base_token", req.BaseToken); e != nil {
		return tut.OrderIn{}, e
	}
	if e := tut.Token("quote_token", req.QuoteToken); e != nil {
		return tut.OrderIn{}, e
	}
	qty, e := tut.PositiveAmount("quantity", req.Quantity)
	if e != nil {
		return tut.OrderIn{}, e
	}
	price, e := tut.PositiveAmount("price", req.Price)
	if e != nil {
		return tut.OrderIn{}, e
	}
	return tut.OrderIn{Side: req.OrderType, Base: req.BaseToken, Quote: req.QuoteToken, Qty: qty, Price: price}, nil
}

// newOrderID returns a random UUID (version 4), the seed's order id.
func newOrderID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func main() {
	fs := flag.NewFlagSet("step1-centralized", flag.ContinueOnError)
	lf := cli.AddLogFlags(fs)
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step1-centralized: tutorial step 1, a centralized orderbook with login sessions (users user1/pass1 and user2/pass2)")
		fs.PrintDefaults()
	}
	if code, done := cli.Parse(fs, os.Args[1:]); done {
		os.Exit(code)
	}
	if _, err := lf.SetDefault(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		os.Exit(2)
	}
	s, err := newServer()
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	os.Exit(tut.Serve("step1-centralized", *host, *port, s.routes()))
}
