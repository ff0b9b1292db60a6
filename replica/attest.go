package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// State attestations (docs/verification.md): after applying every index
// that is a multiple of AttestEvery, a replica BLS-signs
// State(app, index, stateDigest) and serves it at GET /attestation?index=.
// It fetches its peers' attestations at the same index and checks them with
// the cluster's keys. When a quorum of the others signed one digest and it
// computed another, its state is wrong whatever its files say: it stops
// answering signed reads (503), says so in GET /state, and Run returns
// ErrDiverged so its process rebuilds it from the sequencer's history.

// ErrDiverged is what Run returns when the replica's state digest differs
// from a quorum of its peers'.
var ErrDiverged = errors.New("state digest differs from a quorum of replicas")

// Peer is another replica of the cluster, whose attestations are compared.
type Peer struct {
	ID  string
	URL string // http://host:port
	Key *bls.PublicKey
}

// attestationsKept bounds the attestations a replica keeps to serve: with
// AttestEvery 100 the last 6,400 indexes.
const attestationsKept = 64

type attestation struct {
	index  uint64
	digest [32]byte
	sig    string
}

// attestor holds the replica's own attestations and the comparison with
// its peers. Safe for concurrent use.
type attestor struct {
	mu       sync.Mutex
	kept     []attestation // ascending index, at most attestationsKept
	checked  uint64        // the highest own attestation compared with a quorum
	diverged *obapi.Divergence
}

func (a *attestor) add(x attestation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kept = append(a.kept, x)
	if len(a.kept) > attestationsKept {
		a.kept = slices.Clone(a.kept[len(a.kept)-attestationsKept:])
	}
}

func (a *attestor) get(index uint64) (attestation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.kept {
		if x.index == index {
			return x, true
		}
	}
	return attestation{}, false
}

// divergence returns the divergence found, or nil.
func (a *attestor) divergence() *obapi.Divergence {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.diverged
}

func (a *attestor) latest() (attestation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.kept) == 0 {
		return attestation{}, false
	}
	return a.kept[len(a.kept)-1], true
}

// stateMessage is what an attestation signs.
func (r *Replica) stateMessage(index uint64, digest [32]byte) *eip712.State {
	return &eip712.State{App: r.cfg.Domain.App, Index: index, StateDigest: digest}
}

// maybeAttest signs the state digest after index when index is an
// attestation index (apply loop, under the write lock, right after the
// batch at index was applied).
func (r *Replica) maybeAttest() {
	index := r.ledger.index
	if index == 0 || index%r.cfg.AttestEvery != 0 {
		return
	}
	d, _ := r.ledger.Digest()
	sig := r.cfg.Key.Sign(r.cfg.Domain.EIP712.Digest(r.stateMessage(index, d)))
	r.att.add(attestation{index: index, digest: d, sig: sig.Hex()})
}

// refuseUnvouched answers 503 to a signed read while the replica cannot
// vouch for its state: a quorum of replicas attested another digest, or it
// is rebuilding its state (rebuild.go). Every route that signs calls it
// first.
func (r *Replica) refuseUnvouched(c *gin.Context) bool {
	if d := r.att.divergence(); d != nil {
		fail(c, http.StatusServiceUnavailable,
			"this replica's state digest at index %d (%s) differs from the one a quorum of replicas attested (%s, by %v): it signs nothing until it has rebuilt its state",
			d.Index, d.Mine, d.Quorum, d.Signers)
		return true
	}
	if st := r.rebuildStatus(); st != nil {
		fail(c, http.StatusServiceUnavailable,
			"this replica is rebuilding its state from the sequencer's verified history (%s): it signs nothing until the rebuild ends; GET /state shows its progress",
			r.rebuildProgress(st))
		return true
	}
	return false
}

// getAttestation serves GET /attestation?index=N (latest when absent).
func (r *Replica) getAttestation(c *gin.Context) {
	if r.refuseUnvouched(c) {
		return
	}
	var x attestation
	var ok bool
	if q, present := c.GetQuery("index"); present {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil || n == 0 {
			fail(c, http.StatusBadRequest, "index: %q is not a positive decimal integer", clip(q))
			return
		}
		if n%r.cfg.AttestEvery != 0 {
			fail(c, http.StatusBadRequest, "index: replicas attest every %d indexes; %d is not one", r.cfg.AttestEvery, n)
			return
		}
		if x, ok = r.att.get(n); !ok {
			fail(c, http.StatusNotFound, "no attestation at index %d here (not applied yet, or older than the last %d kept)", n, attestationsKept)
			return
		}
	} else if x, ok = r.att.latest(); !ok {
		fail(c, http.StatusNotFound, "no attestation yet (the first is at index %d)", r.cfg.AttestEvery)
		return
	}
	c.JSON(http.StatusOK, obapi.Attestation{App: r.cfg.Domain.App, Index: x.index, StateDigest: hexID(x.digest),
		Replica: r.cfg.ID, Signature: x.sig})
}

// attestLoop compares each new own attestation with the peers' until a
// quorum of them has answered for it, or a newer one replaces it. It
// returns ErrDiverged once a quorum of peers attested another digest.
func (r *Replica) attestLoop(ctx context.Context) error {
	if len(r.cfg.Peers) == 0 {
		<-ctx.Done()
		return nil
	}
	hc := &http.Client{Timeout: r.cfg.AttestCheckInterval + 2*time.Second}
	for ctx.Err() == nil {
		x, ok := r.att.latest()
		if ok && x.index > r.att.checkedIndex() {
			settled, div := r.compareWithPeers(ctx, hc, x)
			if div != nil {
				r.att.setDiverged(div)
				r.prom.AttestationDiverged.Set(1)
				r.log.Error("state digest differs from a quorum of replicas; refusing signed reads and rebuilding",
					"index", div.Index, "mine", div.Mine, "quorum", div.Quorum, "signers", div.Signers)
				return ErrDiverged
			}
			if settled {
				r.att.setChecked(x.index)
				r.prom.AttestationChecked.Set(float64(r.att.checkedIndex()))
				r.checkRebuilt()
			}
		}
		sleep(ctx, r.cfg.AttestCheckInterval)
	}
	return nil
}

func (a *attestor) checkedIndex() uint64 { a.mu.Lock(); defer a.mu.Unlock(); return a.checked }
func (a *attestor) setChecked(i uint64)  { a.mu.Lock(); a.checked = max(a.checked, i); a.mu.Unlock() }
func (a *attestor) setDiverged(d *obapi.Divergence) {
	a.mu.Lock()
	a.diverged = d
	a.mu.Unlock()
}

// compareWithPeers asks every peer for its attestation at x.index and
// checks each signature with the peer's key. settled: a quorum (counting
// this replica) signed x's digest. div: a quorum of the peers alone signed
// one other digest.
func (r *Replica) compareWithPeers(ctx context.Context, hc *http.Client, x attestation) (settled bool, div *obapi.Divergence) {
	n := len(r.cfg.Peers) + 1
	need := n/2 + 1 // the cluster's replica threshold (cluster.ReplicaThreshold)
	by := map[[32]byte][]string{}
	type answer struct {
		id     string
		digest [32]byte
		ok     bool
	}
	answers := make(chan answer, len(r.cfg.Peers))
	for _, p := range r.cfg.Peers {
		go func() {
			d, err := r.fetchAttestation(ctx, hc, p, x.index)
			if err != nil {
				r.log.Debug("peer attestation", "peer", p.ID, "index", x.index, "err", err)
			}
			answers <- answer{id: p.ID, digest: d, ok: err == nil}
		}()
	}
	for range r.cfg.Peers {
		a := <-answers
		if a.ok {
			by[a.digest] = append(by[a.digest], a.id)
		}
	}
	if 1+len(by[x.digest]) >= need {
		return true, nil
	}
	for d, ids := range by {
		if d != x.digest && len(ids) >= need {
			slices.Sort(ids)
			return false, &obapi.Divergence{Index: x.index, Mine: hexID(x.digest), Quorum: hexID(d), Signers: ids}
		}
	}
	return false, nil
}

// fetchAttestation gets and checks one peer's attestation at index.
func (r *Replica) fetchAttestation(ctx context.Context, hc *http.Client, p Peer, index uint64) ([32]byte, error) {
	u := p.URL + "/attestation?" + url.Values{"index": {strconv.FormatUint(index, 10)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return [32]byte{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return [32]byte{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return [32]byte{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return [32]byte{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(string(body)))
	}
	var a obapi.Attestation
	if err := json.Unmarshal(body, &a); err != nil {
		return [32]byte{}, fmt.Errorf("decoding: %w", err)
	}
	d, err := parseHash32("state_digest", a.StateDigest)
	if err != nil {
		return [32]byte{}, err
	}
	if a.App != r.cfg.Domain.App || a.Index != index || a.Replica != p.ID {
		return [32]byte{}, fmt.Errorf("answered for %q/%d as %q", clip(a.App), a.Index, clip(a.Replica))
	}
	sig, err := bls.SignatureFromHex(a.Signature)
	if err != nil {
		return [32]byte{}, fmt.Errorf("signature: %w", err)
	}
	if !sig.Verify(p.Key, r.cfg.Domain.EIP712.Digest(r.stateMessage(index, d))) {
		return [32]byte{}, errors.New("signature does not verify with the peer's cluster key")
	}
	return d, nil
}
