package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/obapi"
)

// Replicas is how the aggregator reaches the replicas of the cluster, by
// their position in cluster order. HTTPReplicas is the real one; tests use
// in-memory twins.
type Replicas interface {
	// State returns replica i's applied index.
	State(ctx context.Context, i int) (uint64, error)
	// Balance returns replica i's signed balance of (address, token) as of
	// applied index.
	Balance(ctx context.Context, i int, address, token string, index uint64) (*obapi.Balance, error)
	// Withdrawal returns replica i's signed withdrawal record; ErrNotFound
	// when the replica has none with that id.
	Withdrawal(ctx context.Context, i int, id string) (*obapi.Withdrawal, error)
	// Attestation returns replica i's signed state digest at index;
	// ErrNotFound when the replica has none there.
	Attestation(ctx context.Context, i int, index uint64) (*obapi.Attestation, error)
}

// ErrNotFound is what a replica that does not know a withdrawal answers.
var ErrNotFound = errors.New("not found")

// ReplicaError is an HTTP error status from a replica.
type ReplicaError struct {
	Status  int
	Message string
}

func (e *ReplicaError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// HTTPReplicas asks replicas over HTTP at the addresses of the cluster
// file (DESIGN §5).
type HTTPReplicas struct {
	c              *cluster.Cluster
	hc             *http.Client
	answerBytesMax int64
}

var _ Replicas = (*HTTPReplicas)(nil)

// NewHTTPReplicas returns the HTTP port. hc may be nil: then a client with
// a connection pool sized for one aggregator talking to a few replicas is
// used. Request deadlines come from the contexts passed in.
func NewHTTPReplicas(c *cluster.Cluster, hc *http.Client, answerBytesMax int64) *HTTPReplicas {
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Every proof asks every replica twice; keeping connections
		// open saves a TCP handshake per question.
		tr.MaxIdleConnsPerHost = 256
		tr.MaxIdleConns = 256 * (len(c.Replicas) + 1)
		tr.IdleConnTimeout = 90 * time.Second
		hc = &http.Client{Transport: tr}
	}
	return &HTTPReplicas{c: c, hc: hc, answerBytesMax: answerBytesMax}
}

func (h *HTTPReplicas) url(i int, path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: h.c.Replicas[i].HTTP, Path: path}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// get does one GET and returns the body of a 200 answer, ErrNotFound for a
// 404, a *ReplicaError for any other status.
func (h *HTTPReplicas) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.answerBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("reading answer: %w", err)
	}
	if int64(len(body)) > h.answerBytesMax {
		return nil, fmt.Errorf("answer exceeds %d bytes", h.answerBytesMax)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w (%s)", ErrNotFound, errorMessage(body))
	default:
		return nil, &ReplicaError{Status: resp.StatusCode, Message: errorMessage(body)}
	}
}

// errorMessage extracts {"error": "..."} from an error answer, bounded: it
// ends up in logs and in our own error answers.
func errorMessage(body []byte) string {
	var e obapi.Error
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return clip(msg)
}

// clip bounds text quoted from a replica.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "…"
	}
	if s == "" {
		return "(no message)"
	}
	return s
}

// State implements Replicas.
func (h *HTTPReplicas) State(ctx context.Context, i int) (uint64, error) {
	body, err := h.get(ctx, h.url(i, "/state", nil))
	if err != nil {
		return 0, err
	}
	st, err := decodeState(body)
	if err != nil {
		return 0, err
	}
	return st.AppliedIndex, nil
}

// Balance implements Replicas.
func (h *HTTPReplicas) Balance(ctx context.Context, i int, address, token string, index uint64) (*obapi.Balance, error) {
	q := url.Values{"address": {address}, "token": {token}, "index": {strconv.FormatUint(index, 10)}}
	body, err := h.get(ctx, h.url(i, "/balance", q))
	if err != nil {
		return nil, err
	}
	return decodeBalance(body)
}

// Withdrawal implements Replicas.
func (h *HTTPReplicas) Withdrawal(ctx context.Context, i int, id string) (*obapi.Withdrawal, error) {
	body, err := h.get(ctx, h.url(i, "/withdrawals/"+url.PathEscape(id), nil))
	if err != nil {
		return nil, err
	}
	return decodeWithdrawal(body)
}

// Attestation implements Replicas.
func (h *HTTPReplicas) Attestation(ctx context.Context, i int, index uint64) (*obapi.Attestation, error) {
	body, err := h.get(ctx, h.url(i, "/attestation", url.Values{"index": {strconv.FormatUint(index, 10)}}))
	if err != nil {
		return nil, err
	}
	var a obapi.Attestation
	if err := decodeJSON(body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// decodeJSON decodes exactly one JSON object. Unknown fields are allowed:
// a newer replica may add some, and everything the aggregator relies on is
// checked against the signature anyway.
func decodeJSON(body []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	if dec.More() {
		return errors.New("malformed answer: data after the JSON object")
	}
	return nil
}

func decodeState(body []byte) (*obapi.State, error) {
	var st obapi.State
	if err := decodeJSON(body, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func decodeBalance(body []byte) (*obapi.Balance, error) {
	var b obapi.Balance
	if err := decodeJSON(body, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

func decodeWithdrawal(body []byte) (*obapi.Withdrawal, error) {
	var w obapi.Withdrawal
	if err := decodeJSON(body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}
