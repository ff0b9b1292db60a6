package testnet

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/seqapi"
)

// VerifyPage checks a finalized page the way an app must, trusting no
// node: every batch's hash and chaining hash recomputed from its
// timestamp and body, starting from prev (the chaining hash of the batch
// before the page, zero at the start); consecutive indexes from after+1;
// and the proof of the last batch, an aggregate BLS signature of at least
// a quorum of cluster nodes over the EIP-712 Finalize digest. It returns
// the chaining hash of the last batch (prev for an empty page).
func VerifyPage(c *cluster.Cluster, app string, after uint64, prev [32]byte, page *seqapi.FinalizedPage) ([32]byte, error) {
	for i, b := range page.Batches {
		if b.Index != after+1+uint64(i) {
			return prev, fmt.Errorf("batch %d has index %d, want %d", i, b.Index, after+1+uint64(i))
		}
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], b.Timestamp)
		hash := eip712.Keccak256(ts[:], []byte(b.Body))
		if got, err := parseHash(b.Hash); err != nil || got != hash {
			return prev, fmt.Errorf("batch %d: hash %s does not match its timestamp and body", b.Index, b.Hash)
		}
		prev = eip712.Keccak256(prev[:], hash[:])
		if got, err := parseHash(b.ChainingHash); err != nil || got != prev {
			return prev, fmt.Errorf("batch %d: chaining hash %s does not extend the chain", b.Index, b.ChainingHash)
		}
	}
	if len(page.Batches) == 0 {
		return prev, nil
	}
	p := page.Finalized
	last := page.Batches[len(page.Batches)-1]
	if p == nil {
		return prev, errors.New("page of batches without a finalize proof")
	}
	if p.Index != last.Index || p.ChainingHash != last.ChainingHash {
		return prev, fmt.Errorf("proof for %d/%s, page ends at %d/%s", p.Index, p.ChainingHash, last.Index, last.ChainingHash)
	}
	if err := VerifyProof(c, app, p); err != nil {
		return prev, err
	}
	return prev, nil
}

// VerifyProof checks a finalize proof's quorum signature.
func VerifyProof(c *cluster.Cluster, app string, p *seqapi.FinalizedProof) error {
	ch, err := parseHash(p.ChainingHash)
	if err != nil {
		return fmt.Errorf("proof chaining hash: %w", err)
	}
	sig, err := bls.SignatureFromHex(p.Signature)
	if err != nil {
		return fmt.Errorf("proof signature: %w", err)
	}
	digest := c.Domain.Digest(&eip712.Finalize{App: app, View: p.View, Index: p.Index, ChainingHash: ch})
	if err := c.VerifyNodeQuorum(digest, sig, p.Signers); err != nil {
		return fmt.Errorf("finalize proof of %d: %w", p.Index, err)
	}
	return nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	if !strings.HasPrefix(s, "0x") || len(s) != 66 {
		return h, fmt.Errorf("%q is not 0x + 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s[2:])); err != nil {
		return h, err
	}
	return h, nil
}

// Client is a small HTTP client of the node API for tests.
type Client struct {
	HTTP *http.Client
}

// NewClient returns a client with a short timeout: nodes under test answer
// fast or are down.
func NewClient() *Client { return &Client{HTTP: &http.Client{Timeout: 5 * time.Second}} }

// GetJSON GETs url and decodes a 200 answer into out.
func (c *Client) GetJSON(url string, out any) error {
	resp, err := c.HTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// Put PUTs body to url and returns the status and answer.
func (c *Client) Put(url string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

// AllFinalized reads every finalized batch of app from the node at base
// URL (http://host:port), page by page, verifying each page against the
// cluster. It returns the batches in index order.
func (c *Client) AllFinalized(cl *cluster.Cluster, base, app string) ([]seqapi.Batch, error) {
	var out []seqapi.Batch
	var prev [32]byte
	for {
		after := uint64(len(out))
		var page seqapi.FinalizedPage
		if err := c.GetJSON(fmt.Sprintf("%s/node/%s/batches/finalized?after=%d", base, app, after), &page); err != nil {
			return out, err
		}
		var err error
		if prev, err = VerifyPage(cl, app, after, prev, &page); err != nil {
			return out, fmt.Errorf("%s: page after %d: %w", base, after, err)
		}
		if len(page.Batches) == 0 {
			return out, nil
		}
		out = append(out, page.Batches...)
	}
}

// WaitFor polls cond every interval until it returns nil or timeout
// passes; it returns cond's last error then. Tests wait on conditions,
// never on fixed sleeps.
func WaitFor(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
