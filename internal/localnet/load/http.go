package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/client/seqapi"
)

// answerBytesMax bounds what is read from one answer: state, order and
// proof answers are a few KiB at most.
const answerBytesMax = 1 << 20

// HTTP is a small client for the replica and node routes the load tools
// use. Its transport keeps many idle connections per host, so a
// benchmark's concurrent requests do not pay a TCP handshake each.
type HTTP struct {
	c *http.Client
}

// NewHTTP returns a client whose requests time out after timeout (a
// ?wait=finalized post needs more than a read).
func NewHTTP(timeout time.Duration) *HTTP {
	return NewHTTPDial(timeout, (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
}

// NewHTTPDial is NewHTTP with its own dial function (a test reaching
// servers inside a network namespace dials from there).
func NewHTTPDial(timeout time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *HTTP {
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	return &HTTP{c: &http.Client{Transport: tr, Timeout: timeout}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Msg) }

// do sends a request and decodes a 2xx JSON answer into out.
func (h *HTTP) do(ctx context.Context, method, url string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, answerBytesMax))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e obapi.Error
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &StatusError{Code: resp.StatusCode, Msg: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, url, err)
	}
	return nil
}

// PostOrder posts a signed order body to a replica and returns its
// acceptance (order id, "accepted").
func (h *HTTP) PostOrder(ctx context.Context, replicaURL string, body []byte) (obapi.OrderAccepted, error) {
	var a obapi.OrderAccepted
	err := h.do(ctx, http.MethodPost, replicaURL+"/order", body, &a)
	return a, err
}

// PostOrderFinalized posts with ?wait=finalized: the answer is the order
// as applied (its batch index and fills).
func (h *HTTP) PostOrderFinalized(ctx context.Context, replicaURL string, body []byte) (obapi.Order, error) {
	var o obapi.Order
	err := h.do(ctx, http.MethodPost, replicaURL+"/order?wait=finalized", body, &o)
	return o, err
}

// Order reads GET /orders/{id}.
func (h *HTTP) Order(ctx context.Context, replicaURL, id string) (obapi.Order, error) {
	var o obapi.Order
	err := h.do(ctx, http.MethodGet, replicaURL+"/orders/"+id, nil, &o)
	return o, err
}

// State reads a replica's GET /state.
func (h *HTTP) State(ctx context.Context, replicaURL string) (obapi.State, error) {
	var s obapi.State
	err := h.do(ctx, http.MethodGet, replicaURL+"/state", nil, &s)
	return s, err
}

// AppliedIndex reads a replica's applied index cheaply: GET /depth of the
// load's market with one level answers it without the state digest that
// GET /state computes.
func (h *HTTP) AppliedIndex(ctx context.Context, replicaURL string) (uint64, error) {
	var d obapi.Depth
	err := h.do(ctx, http.MethodGet, replicaURL+"/depth?levels=1&market="+url.QueryEscape(Market), nil, &d)
	return d.Index, err
}

// NodeState reads a sequencer node's GET /node/state.
func (h *HTTP) NodeState(ctx context.Context, nodeURL string) (seqapi.NodeState, error) {
	var s seqapi.NodeState
	err := h.do(ctx, http.MethodGet, nodeURL+"/node/state", nil, &s)
	return s, err
}

// PutBatch sends one batch to a node: PUT /node/{app}/batches.
func (h *HTTP) PutBatch(ctx context.Context, nodeURL, app string, body []byte) error {
	return h.do(ctx, http.MethodPut, nodeURL+"/node/"+app+"/batches", body, nil)
}

// Finalized reads GET /node/{app}/batches/finalized?after=N.
func (h *HTTP) Finalized(ctx context.Context, nodeURL, app string, after uint64) (seqapi.FinalizedPage, error) {
	var p seqapi.FinalizedPage
	err := h.do(ctx, http.MethodGet, fmt.Sprintf("%s/node/%s/batches/finalized?after=%d", nodeURL, app, after), nil, &p)
	return p, err
}

// GetJSON reads any JSON answer (the aggregator's proofs).
func (h *HTTP) GetJSON(ctx context.Context, url string, out any) error {
	return h.do(ctx, http.MethodGet, url, nil, out)
}
