package tut

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/amount"
)

// RequestBytesMax bounds a request body: an order is a few hundred bytes,
// so 64 KiB leaves room for anything honest and keeps a flood of large
// bodies from costing memory.
const RequestBytesMax = 64 << 10

// TokenBytesMax bounds a token name. Market names ("BASE/QUOTE") are kept by
// every resting order, so token names stay short.
const TokenBytesMax = 32

// HTTPError is a refusal with its status; it is written as {"error": Msg}.
type HTTPError struct {
	Status int
	Msg    string
}

func (e *HTTPError) Error() string { return e.Msg }

// BadRequest returns a 400 error.
func BadRequest(format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// Abort writes e as the answer.
func Abort(c *gin.Context, e *HTTPError) {
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e.Msg})
}

// DecodeJSON reads the body into v strictly: one JSON object, no unknown
// fields (a misspelt "quantitiy" is an error, not a silent zero), at most
// RequestBytesMax bytes. Errors name the field when the decoder knows it.
func DecodeJSON(c *gin.Context, v any) *HTTPError {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, RequestBytesMax+1))
	if err != nil {
		return BadRequest("reading the request body: %v", err)
	}
	if len(body) > RequestBytesMax {
		return &HTTPError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body over %d bytes", RequestBytesMax)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return BadRequest("field %q: expected %s", typeErr.Field, typeErr.Type)
		case errors.As(err, &syntaxErr):
			return BadRequest("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return BadRequest("malformed JSON: the body ends inside a value")
		case errors.Is(err, io.EOF):
			return BadRequest("empty request body: expected a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return BadRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return BadRequest("invalid request: %v", err)
	}
	if dec.More() {
		return BadRequest("trailing data after the JSON object")
	}
	return nil
}

// AmountField holds the raw JSON of a quantity or price field. It accepts
// any JSON value while decoding so that PositiveAmount can say which field
// is wrong (encoding/json loses the field name for custom decoders' errors).
type AmountField []byte

// UnmarshalJSON implements json.Unmarshaler.
func (a *AmountField) UnmarshalJSON(b []byte) error {
	*a = append((*a)[:0], b...)
	return nil
}

// PositiveAmount parses a quantity or price field: a JSON number or a
// decimal string, read exactly from its text (never through a float), at
// most 6 decimals, greater than zero, at most 2^63-1 base units.
func PositiveAmount(field string, raw AmountField) (uint64, *HTTPError) {
	raw = bytes.TrimSpace(raw)
	var text string
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return 0, BadRequest("field %q is required", field)
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, BadRequest("field %q: %v", field, err)
		}
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		text = string(raw) // encoding/json has checked the number's syntax
	default:
		return 0, BadRequest("field %q: expected a number or a decimal string", field)
	}
	v, err := amount.ParsePositive(text)
	if err != nil {
		return 0, BadRequest("field %q: %v", field, err)
	}
	return v, nil
}

// Token checks a token name field.
func Token(field, s string) *HTTPError {
	switch {
	case s == "":
		return BadRequest("field %q is required", field)
	case len(s) > TokenBytesMax:
		return BadRequest("field %q: token name over %d bytes", field, TokenBytesMax)
	case strings.ContainsAny(s, "/ \t\r\n"):
		return BadRequest("field %q: token name may not contain '/' or spaces", field)
	}
	return nil
}

// Side checks the order_type field.
func Side(s string) *HTTPError {
	if s != "buy" && s != "sell" {
		return BadRequest("field \"order_type\" must be \"buy\" or \"sell\", got %q", s)
	}
	return nil
}

// Balance is every step's answer to GET /balance: the same shape in all
// four steps (step 4 adds the index it is bound to, the instance and its
// signature). balance is a decimal string ("800.5"): a JSON number would be
// read as a float by most clients, and 6-decimal amounts do not survive
// that; balance_units is the same amount in base units (10^-6).
type Balance struct {
	Username     string `json:"username,omitempty"` // step 1
	Address      string `json:"address,omitempty"`  // steps 2–4
	Token        string `json:"token"`
	Balance      string `json:"balance"`
	BalanceUnits string `json:"balance_units"`
}

// WriteBalance answers GET /balance for an account (a step 1 username or a
// step 2–3 address) holding v base units of token.
func WriteBalance(c *gin.Context, b Balance, v uint64) {
	b.Balance, b.BalanceUnits = amount.Format(v), strconv.FormatUint(v, 10)
	c.JSON(http.StatusOK, b)
}

// DecodeBalance reads a GET /balance answer and returns its balance
// field (tests and scripts).
func DecodeBalance(body []byte) (string, error) {
	var b Balance
	if err := json.Unmarshal(body, &b); err != nil {
		return "", fmt.Errorf("balance answer %q: %w", body, err)
	}
	return b.Balance, nil
}

// NewEngine returns a gin engine without debug output, recovering from
// panics into a 500 (a panic is a bug; it must not take the service down).
func NewEngine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.NoRoute(func(c *gin.Context) {
		Abort(c, &HTTPError{Status: http.StatusNotFound, Msg: "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
	return r
}

// Serve listens on host:port and serves h until SIGINT or SIGTERM, then
// shuts down gracefully. It returns the process exit code.
func Serve(name, host string, port int, h http.Handler) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Error("listen", "service", name, "addr", addr, "err", err)
		return 1
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	slog.Info("listening", "service", name, "addr", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		slog.Error("serve", "service", name, "err", err)
		return 1
	case <-ctx.Done():
	}
	slog.Info("shutting down", "service", name)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		slog.Error("shutdown", "service", name, "err", err)
		return 1
	}
	return 0
}
